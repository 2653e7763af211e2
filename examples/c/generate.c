/*
 * Generate with mmrt from C: load a bundle, run a prompt (optionally with
 * images), stream the text to stdout, then print the token ids.
 *
 *   cargo build -p mmrt-capi
 *   cc examples/c/generate.c -Immrt-capi/include -Ltarget/debug -lmmrt_c \
 *      -Wl,-rpath,$PWD/target/debug -o generate
 *   ./generate models/tiny "Describe the image." --image tests/fixtures/images/a_32.png
 *
 * Options: --image PATH (repeatable), --max-tokens N, --threads N, --chat,
 * --seed S --temperature T (sampling). ONNX Runtime is found as mmrt finds it
 * (MMRT_ORT_LIB, next to the executable, .cache/onnxruntime, Python package).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmrt.h"

/* Print a status and the thread's last error; returns 1 for main's exit code. */
static int fail(const char *what, MmrtStatus status) {
    fprintf(stderr, "error: %s: %s: %s\n", what, mmrt_status_name(status), mmrt_last_error());
    return 1;
}

/* Token callback: write each piece as it arrives; 0 means go on. */
static int32_t on_piece(const char *piece, size_t len, void *user_data) {
    size_t *pieces = (size_t *)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    ++*pieces;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s BUNDLE PROMPT [--image PATH]... [--max-tokens N] [--threads N] [--chat] [--temperature T --seed S]\n", argv[0]);
        return 2;
    }
    if (mmrt_abi_version() != MMRT_ABI_VERSION) {
        fprintf(stderr, "error: library ABI %u, header ABI %u\n", mmrt_abi_version(), (unsigned)MMRT_ABI_VERSION);
        return 1;
    }
    const char *bundle = argv[1];
    const char *prompt = argv[2];

    MmrtRuntime *runtime = NULL;
    MmrtModel *model = NULL;
    MmrtRequest *request = NULL;
    MmrtResult *result = NULL;
    uint32_t *ids = NULL;
    int rc = 1;
    MmrtStatus s;
    MmrtModelOptions options;
    mmrt_model_options_init(&options);
    options.bundle_path = bundle;

    if ((s = mmrt_request_new(prompt, &request)) != MMRT_OK) { rc = fail("request", s); goto done; }
    float temperature = 0.0f;
    unsigned long long seed = 0;
    for (int i = 3; i < argc; ++i) {
        const char *flag = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(flag, "--chat")) {
            mmrt_request_set_chat(request, 1);
            continue;
        }
        if (!value) { fprintf(stderr, "error: %s needs a value\n", flag); rc = 2; goto done; }
        ++i;
        if (!strcmp(flag, "--image")) {
            s = mmrt_request_add_image_file(request, value);
        } else if (!strcmp(flag, "--max-tokens")) {
            s = mmrt_request_set_max_tokens(request, (size_t)strtoull(value, NULL, 10));
        } else if (!strcmp(flag, "--threads")) {
            options.threads = (uint32_t)strtoul(value, NULL, 10);
            s = MMRT_OK;
        } else if (!strcmp(flag, "--temperature")) {
            temperature = strtof(value, NULL);
            s = mmrt_request_set_sampling(request, temperature, 0, 1.0f, seed);
        } else if (!strcmp(flag, "--seed")) {
            seed = strtoull(value, NULL, 10);
            s = mmrt_request_set_sampling(request, temperature, 0, 1.0f, seed);
        } else {
            fprintf(stderr, "error: unknown option %s\n", flag);
            rc = 2;
            goto done;
        }
        if (s != MMRT_OK) { rc = fail(flag, s); goto done; }
    }

    if ((s = mmrt_runtime_new(NULL, &runtime)) != MMRT_OK) { rc = fail("ONNX Runtime", s); goto done; }
    if ((s = mmrt_model_load(runtime, &options, &model)) != MMRT_OK) { rc = fail("load", s); goto done; }

    size_t pieces = 0;
    if ((s = mmrt_generate(model, request, on_piece, &pieces, NULL, &result)) != MMRT_OK) { rc = fail("generate", s); goto done; }
    printf("\n");

    size_t count = 0;
    mmrt_result_token_ids(result, NULL, 0, &count); /* MMRT_ERROR_BUFFER_TOO_SMALL unless empty: count is set */
    ids = (uint32_t *)malloc((count ? count : 1) * sizeof *ids);
    if (!ids) { fprintf(stderr, "error: out of memory\n"); goto done; }
    if ((s = mmrt_result_token_ids(result, ids, count, &count)) != MMRT_OK) { rc = fail("token ids", s); goto done; }
    printf("token_ids:");
    for (size_t i = 0; i < count; ++i) printf(" %u", ids[i]);
    printf("\n");

    MmrtTimings t;
    if ((s = mmrt_result_timings(result, &t)) != MMRT_OK) { rc = fail("timings", s); goto done; }
    fprintf(stderr, "%zu prompt tokens, %zu generated in %zu pieces; first token %.1f ms, prefill %.1f ms, decode %.1f ms (%.1f tokens/s), total %.1f ms\n",
            t.prompt_tokens, t.generated_tokens, pieces, t.time_to_first_token_ms, t.prefill_ms, t.decode_ms,
            t.decode_tokens_per_second, t.total_ms);
    rc = 0;

done:
    free(ids);
    mmrt_result_free(result); /* the free functions accept NULL */
    mmrt_request_free(request);
    mmrt_model_free(model);
    mmrt_runtime_free(runtime);
    return rc;
}
