// Generate with mmrt from C++: RAII owners for the C handles, an exception
// carrying the status and message, a lambda as the token callback.
//
//   cargo build -p mmrt-capi
//   c++ -std=c++17 examples/cpp/generate.cpp -Immrt-capi/include -Ltarget/debug -lmmrt_c
//       -Wl,-rpath,$PWD/target/debug -o generate_cpp
//   ./generate_cpp models/tiny "Describe the image." --image tests/fixtures/images/a_32.png
//
// Options: --image PATH (repeatable), --max-tokens N, --threads N, --chat.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mmrt.h"

namespace mmrt {

// A failed call: the status code and mmrt_last_error()'s message.
class Error : public std::runtime_error {
 public:
  Error(const std::string &what, MmrtStatus status)
      : std::runtime_error(what + ": " + mmrt_status_name(status) + ": " + mmrt_last_error()), status_(status) {}
  MmrtStatus status() const { return status_; }

 private:
  MmrtStatus status_;
};

inline void check(MmrtStatus status, const char *what) {
  if (status != MMRT_OK) throw Error(what, status);
}

// unique_ptr with the matching mmrt_*_free as deleter.
template <typename T, MmrtStatus (*Free)(T *)>
struct Deleter {
  void operator()(T *p) const { Free(p); }
};
template <typename T, MmrtStatus (*Free)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

class Runtime {
 public:
  explicit Runtime(const char *ort_library = nullptr) {
    MmrtRuntime *raw = nullptr;
    check(mmrt_runtime_new(ort_library, &raw), "ONNX Runtime");
    handle_.reset(raw);
  }
  const MmrtRuntime *get() const { return handle_.get(); }

 private:
  Handle<MmrtRuntime, mmrt_runtime_free> handle_;
};

class Result {
 public:
  explicit Result(MmrtResult *raw) : handle_(raw) {}
  std::string_view text() const {
    const char *text = nullptr;
    size_t len = 0;
    check(mmrt_result_text(handle_.get(), &text, &len), "result text");
    return {text, len};
  }
  std::vector<uint32_t> token_ids() const {
    size_t count = 0;
    MmrtStatus s = mmrt_result_token_ids(handle_.get(), nullptr, 0, &count);
    if (s != MMRT_OK && s != MMRT_ERROR_BUFFER_TOO_SMALL) throw Error("token ids", s);
    std::vector<uint32_t> ids(count);
    check(mmrt_result_token_ids(handle_.get(), ids.data(), ids.size(), &count), "token ids");
    return ids;
  }
  MmrtTimings timings() const {
    MmrtTimings t{};
    check(mmrt_result_timings(handle_.get(), &t), "timings");
    return t;
  }

 private:
  Handle<MmrtResult, mmrt_result_free> handle_;
};

class Request {
 public:
  explicit Request(const std::string &prompt) {
    MmrtRequest *raw = nullptr;
    check(mmrt_request_new(prompt.c_str(), &raw), "request");
    handle_.reset(raw);
  }
  Request &image(const std::string &path) {
    check(mmrt_request_add_image_file(handle_.get(), path.c_str()), "image");
    return *this;
  }
  Request &max_tokens(size_t n) {
    check(mmrt_request_set_max_tokens(handle_.get(), n), "max tokens");
    return *this;
  }
  Request &chat(bool on) {
    check(mmrt_request_set_chat(handle_.get(), on ? 1 : 0), "chat");
    return *this;
  }
  const MmrtRequest *get() const { return handle_.get(); }

 private:
  Handle<MmrtRequest, mmrt_request_free> handle_;
};

class Model {
 public:
  Model(const Runtime &runtime, const std::string &bundle, uint32_t threads = 0, const char *provider = "cpu") {
    MmrtModelOptions options;
    check(mmrt_model_options_init(&options), "options");
    options.bundle_path = bundle.c_str();
    options.provider = provider;
    options.threads = threads;
    MmrtModel *raw = nullptr;
    check(mmrt_model_load(runtime.get(), &options, &raw), "load");
    handle_.reset(raw);
  }

  // Generate, calling on_piece with each piece of text (return false to cancel).
  Result generate(const Request &request, const std::function<bool(std::string_view)> &on_piece) {
    MmrtResult *raw = nullptr;
    check(mmrt_generate(handle_.get(), request.get(), &Model::trampoline,
                        const_cast<std::function<bool(std::string_view)> *>(&on_piece), nullptr, &raw),
          "generate");
    return Result(raw);
  }

 private:
  static int32_t trampoline(const char *piece, size_t len, void *user_data) {
    auto *f = static_cast<std::function<bool(std::string_view)> *>(user_data);
    try {
      return (*f)(std::string_view(piece, len)) ? 0 : 1;
    } catch (...) {
      return 1;  // never let an exception cross the C boundary
    }
  }
  Handle<MmrtModel, mmrt_model_free> handle_;
};

}  // namespace mmrt

int main(int argc, char **argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " BUNDLE PROMPT [--image PATH]... [--max-tokens N] [--threads N] [--chat]\n";
    return 2;
  }
  try {
    mmrt::Request request(argv[2]);
    uint32_t threads = 0;
    for (int i = 3; i < argc; ++i) {
      std::string flag = argv[i];
      if (flag == "--chat") {
        request.chat(true);
        continue;
      }
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      std::string value = argv[++i];
      if (flag == "--image") request.image(value);
      else if (flag == "--max-tokens") request.max_tokens(std::stoul(value));
      else if (flag == "--threads") threads = static_cast<uint32_t>(std::stoul(value));
      else throw std::invalid_argument("unknown option " + flag);
    }
    mmrt::Runtime runtime;
    mmrt::Model model(runtime, argv[1], threads);
    mmrt::Result result = model.generate(request, [](std::string_view piece) {
      std::cout << piece << std::flush;
      return true;
    });
    std::cout << "\ntoken_ids:";
    for (uint32_t id : result.token_ids()) std::cout << ' ' << id;
    std::cout << std::endl;
    MmrtTimings t = result.timings();
    std::cerr << t.prompt_tokens << " prompt tokens, " << t.generated_tokens << " generated; first token "
              << t.time_to_first_token_ms << " ms, " << t.decode_tokens_per_second << " tokens/s\n";
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
