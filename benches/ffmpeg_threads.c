/* FFmpeg's H.264 decoder alone, driven from C: the floor under `mmrt frames`.
 *
 * Decodes a clip's best video stream up to frame LAST (display order) with
 * THREADS frame threads and prints the time, so the decoder's own cost can be
 * told from mmrt's (benches/video_decode.py measures mmrt against PyAV). With
 * CONVERT=1 it also converts every 16th frame to 224x224 RGB24 as mmrt does.
 * The probe (avformat_find_stream_info) is skipped, as mmrt skips it for MP4.
 *
 *   P=.cache/ffmpeg/static
 *   cc -O2 benches/ffmpeg_threads.c -I$P/include -L$P/lib \
 *      -lavformat -lavcodec -lswscale -lavutil -lm -lpthread -o target/ffmpeg_threads
 *   for t in 1 2 3; do target/ffmpeg_threads .cache/video/clips/bigbuckbunny.mp4 $t 115; done
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void convert(const AVFrame *frame) {
    static struct SwsContext *scaler;
    static uint8_t rgb[224 * 224 * 3];
    uint8_t *planes[4] = {rgb};
    int strides[4] = {224 * 3};
    if (!scaler)
        scaler = sws_getContext(frame->width, frame->height, frame->format, 224, 224, AV_PIX_FMT_RGB24,
                                SWS_BILINEAR, NULL, NULL, NULL);
    sws_scale(scaler, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height, planes, strides);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CLIP THREADS LAST\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]), last = atoi(argv[3]), conv = getenv("CONVERT") != NULL;
    double t0 = now_ms();
    AVFormatContext *input = NULL;
    if (avformat_open_input(&input, argv[1], NULL, NULL) < 0) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    int stream = av_find_best_stream(input, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (stream < 0) {
        fprintf(stderr, "%s holds no video stream\n", argv[1]);
        return 1;
    }
    const AVCodec *codec = avcodec_find_decoder(input->streams[stream]->codecpar->codec_id);
    AVCodecContext *decoder = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(decoder, input->streams[stream]->codecpar);
    decoder->thread_count = threads;
    decoder->thread_type = FF_THREAD_FRAME;
    if (avcodec_open2(decoder, codec, NULL) < 0) {
        fprintf(stderr, "cannot open the decoder\n");
        return 1;
    }
    double t1 = now_ms();
    AVPacket *packet = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    int decoded = 0;
    while (decoded <= last && av_read_frame(input, packet) >= 0) {
        if (packet->stream_index == stream && avcodec_send_packet(decoder, packet) >= 0) {
            while (decoded <= last && avcodec_receive_frame(decoder, frame) == 0) {
                if (conv && decoded % 16 == 0)
                    convert(frame);
                decoded++;
            }
        }
        av_packet_unref(packet);
    }
    printf("threads %d open %.1f ms decode %.1f ms frames %d\n", threads, t1 - t0, now_ms() - t1, decoded);
    return 0;
}
