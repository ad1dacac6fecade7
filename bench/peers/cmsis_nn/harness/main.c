/* CMSIS-NN as the peer of SeaCLR's int8 encoder on an emulated Cortex-M7.
 *
 * Runs every layer of a SeaCLR blob (exported with its expected outputs by
 * ../export into model_data.h) through CMSIS-NN:
 *   conv 3x3, padding 1, stride 1/2  -> arm_convolve_wrapper_s8
 *   linear                           -> arm_fully_connected_wrapper_s8
 *                                       (per-channel multipliers)
 *   global average pool              -> a C loop of sums requantized with
 *                                       CMSIS-NN's arm_nn_requantize (its
 *                                       arm_avgpool_s8 cannot rescale: it
 *                                       divides by the window size and keeps
 *                                       the input's scale and zero point)
 * compares each layer's output with the host engine's bytes, and counts
 * instructions per layer and per image.
 *
 * Counting: QEMU runs with -icount shift=0, so every guest instruction
 * advances virtual time by exactly 1 ns; CMSDK TIMER0 counts down at 25 MHz,
 * one tick per 40 instructions. Counts are read before and after each layer
 * (resolution 40 instructions) and do not depend on the host. Semihosting
 * calls (output, exit) happen outside the timed spans.
 *
 * Output lines (parsed by ../run.sh):
 *   calibration loop of 2000000 instructions: measured N
 *   layer I KIND IN OUT stride S macs M ticks T instructions N mismatches X maxdiff D
 *   image instructions N ticks T match yes|no
 */
#include <stdint.h>
#include <string.h>

#include "arm_nnfunctions.h"
#include "arm_nnsupportfunctions.h"
#include "board.h"
#include "model_data.h"

#define INSTRUCTIONS_PER_TICK 40u
#define SCRATCH_BYTES (64 * 1024)

static int8_t act_a[SEACLR_MAX_ACTIVATION] __attribute__((aligned(8)));
static int8_t act_b[SEACLR_MAX_ACTIVATION] __attribute__((aligned(8)));
static int32_t scratch[SCRATCH_BYTES / 4];

/* ---- output without libc's stdio ---- */
static char line[512];
static unsigned line_len;

static void put_str(const char *s)
{
    while (*s && line_len + 1 < sizeof line)
        line[line_len++] = *s++;
}

static void put_u32(uint32_t v)
{
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && line_len + 1 < sizeof line)
        line[line_len++] = digits[--n];
}

static void put_i32(int32_t v)
{
    if (v < 0) {
        put_str("-");
        put_u32(0u - (uint32_t)v);
    } else {
        put_u32((uint32_t)v);
    }
}

static void put_shape(int32_t h, int32_t w, int32_t c)
{
    put_i32(h);
    put_str("x");
    put_i32(w);
    put_str("x");
    put_i32(c);
}

static void flush(void)
{
    line[line_len] = 0;
    sh_write0(line);
    line_len = 0;
}

/* ---- the layers ---- */
static const char *kind_name(int32_t kind)
{
    switch (kind) {
    case SEACLR_CONV3X3:
        return "conv3x3";
    case SEACLR_AVGPOOL:
        return "avgpool";
    case SEACLR_LINEAR:
        return "linear";
    default:
        return "?";
    }
}

/* Global average pool as TFLM's MEAN over H, W would do it with CMSIS-NN's
 * helper: per channel sum(q - zp_in), arm_nn_requantize with the layer's
 * single multiplier (it holds 1 / (H * W)), + zp_out, clamp. */
static void avgpool(const seaclr_layer *l, const int8_t *in, int8_t *out)
{
    const int32_t c = l->in_c, n = l->in_h * l->in_w;
    int32_t *sums = scratch;
    for (int32_t k = 0; k < c; k++)
        sums[k] = -l->input_zp * n;
    for (int32_t p = 0; p < n; p++) {
        const int8_t *row = in + p * c;
        for (int32_t k = 0; k < c; k++)
            sums[k] += row[k];
    }
    for (int32_t k = 0; k < c; k++) {
        int32_t v = arm_nn_requantize(sums[k], l->multipliers[0], l->shifts[0]) + l->output_zp;
        v = v < l->act_min ? l->act_min : v;
        v = v > l->act_max ? l->act_max : v;
        out[k] = (int8_t)v;
    }
}

/* Buffer and one-time preparation (what TFLM does in Prepare, not timed). */
typedef struct {
    cmsis_nn_context ctx;
    cmsis_nn_conv_params conv;
    cmsis_nn_fc_params fc;
    cmsis_nn_dims in, filter, bias, out;
} prepared;

static int prepare(const seaclr_layer *l, prepared *p)
{
    memset(p, 0, sizeof *p);
    p->in = (cmsis_nn_dims){.n = 1, .h = l->in_h, .w = l->in_w, .c = l->in_c};
    p->out = (cmsis_nn_dims){.n = 1, .h = l->out_h, .w = l->out_w, .c = l->out_c};
    p->bias = (cmsis_nn_dims){.n = 1, .h = 1, .w = 1, .c = l->out_c};
    p->ctx.buf = scratch;
    int32_t size = 0;
    if (l->kind == SEACLR_CONV3X3) {
        p->conv = (cmsis_nn_conv_params){
            .input_offset = -l->input_zp,
            .output_offset = l->output_zp,
            .stride = {.w = l->stride, .h = l->stride},
            .padding = {.w = 1, .h = 1},
            .dilation = {.w = 1, .h = 1},
            .activation = {.min = l->act_min, .max = l->act_max},
        };
        p->filter = (cmsis_nn_dims){.n = l->out_c, .h = 3, .w = 3, .c = l->in_c};
        size = arm_convolve_wrapper_s8_get_buffer_size(&p->conv, &p->in, &p->filter, &p->out);
    } else if (l->kind == SEACLR_LINEAR) {
        p->fc = (cmsis_nn_fc_params){
            .input_offset = -l->input_zp,
            .filter_offset = 0,
            .output_offset = l->output_zp,
            .activation = {.min = l->act_min, .max = l->act_max},
        };
        const int32_t depth = l->in_h * l->in_w * l->in_c;
        p->in = (cmsis_nn_dims){.n = 1, .h = 1, .w = 1, .c = depth};
        p->filter = (cmsis_nn_dims){.n = depth, .h = 1, .w = 1, .c = l->out_c};
        size = arm_fully_connected_s8_get_buffer_size(&p->filter);
        if (size > 0) /* kernel sums (MVE builds only; 0 with DSP) */
            arm_vector_sum_s8(scratch, depth, l->out_c, l->weights, -l->input_zp, 0, l->bias);
    } else {
        size = l->in_c * 4;
    }
    if (size < 0 || size > SCRATCH_BYTES)
        return -1;
    p->ctx.size = size;
    return 0;
}

static int run_layer(const seaclr_layer *l, const prepared *p, const int8_t *in, int8_t *out)
{
    if (l->kind == SEACLR_CONV3X3) {
        cmsis_nn_per_channel_quant_params q = {(int32_t *)l->multipliers, (int32_t *)l->shifts};
        return arm_convolve_wrapper_s8(&p->ctx, &p->conv, &q, &p->in, in, &p->filter, l->weights,
                                       &p->bias, l->bias, &p->out, out);
    }
    if (l->kind == SEACLR_LINEAR) {
        cmsis_nn_quant_params q = {(int32_t *)l->multipliers, (int32_t *)l->shifts, 1};
        return arm_fully_connected_wrapper_s8(&p->ctx, &p->fc, &q, &p->in, in, &p->filter,
                                              l->weights, &p->bias, l->bias, &p->out, out);
    }
    avgpool(l, in, out);
    return ARM_CMSIS_NN_SUCCESS;
}

static prepared preps[SEACLR_LAYER_COUNT];

/* A loop of exactly 2 * n instructions (subs, bne), timed like a layer:
 * checks the counting method on every run. */
static uint32_t calibrate(uint32_t n)
{
    const uint32_t t0 = timer_now();
    __asm volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n)::"cc");
    const uint32_t t1 = timer_now();
    return (t0 - t1) * INSTRUCTIONS_PER_TICK;
}

int main(void)
{
    timer_start();
    put_str("model " SEACLR_MODEL_NAME "\nimage " SEACLR_IMAGE_NAME "\n");
#if defined(ARM_MATH_DSP)
    put_str("cmsis-nn path: DSP (ARM_MATH_DSP)\n");
#else
    put_str("cmsis-nn path: pure C\n");
#endif
    put_str("calibration loop of 2000000 instructions: measured ");
    put_u32(calibrate(1000000));
    put_str("\n");
    flush();

    for (int i = 0; i < SEACLR_LAYER_COUNT; i++) {
        if (prepare(&seaclr_layers[i], &preps[i]) != 0) {
            put_str("layer ");
            put_i32(i);
            put_str(": scratch buffer too small\n");
            flush();
            return 1;
        }
    }

    /* Pass 1: layer by layer, each output compared outside the timed span. */
    int all_match = 1;
    uint32_t sum_ticks = 0;
    int8_t *src = act_a, *dst = act_b;
    memcpy(src, seaclr_input, sizeof seaclr_input);
    for (int i = 0; i < SEACLR_LAYER_COUNT; i++) {
        const seaclr_layer *l = &seaclr_layers[i];
        const uint32_t t0 = timer_now();
        const int status = run_layer(l, &preps[i], src, dst);
        const uint32_t t1 = timer_now();
        const uint32_t ticks = t0 - t1;
        sum_ticks += ticks;
        const int32_t len = l->out_h * l->out_w * l->out_c;
        int32_t mismatches = 0, maxdiff = 0, first = -1;
        for (int32_t k = 0; k < len; k++) {
            const int32_t d = (int32_t)dst[k] - (int32_t)l->expected[k];
            if (d != 0) {
                if (first < 0)
                    first = k;
                mismatches++;
                maxdiff = d > maxdiff ? d : (-d > maxdiff ? -d : maxdiff);
            }
        }
        if (status != ARM_CMSIS_NN_SUCCESS || mismatches)
            all_match = 0;
        put_str("layer ");
        put_i32(i);
        put_str(" ");
        put_str(kind_name(l->kind));
        put_str(" ");
        put_shape(l->in_h, l->in_w, l->in_c);
        put_str(" ");
        put_shape(l->out_h, l->out_w, l->out_c);
        put_str(" stride ");
        put_i32(l->stride);
        put_str(" macs ");
        put_u32(l->macs);
        put_str(" ticks ");
        put_u32(ticks);
        put_str(" instructions ");
        put_u32(ticks * INSTRUCTIONS_PER_TICK);
        put_str(" mismatches ");
        put_i32(mismatches);
        put_str(" maxdiff ");
        put_i32(maxdiff);
        if (status != ARM_CMSIS_NN_SUCCESS) {
            put_str(" status ");
            put_i32(status);
        }
        put_str("\n");
        if (first >= 0) {
            put_str("  first mismatch at ");
            put_i32(first);
            put_str(": cmsis-nn ");
            put_i32(dst[first]);
            put_str(", expected ");
            put_i32(l->expected[first]);
            put_str("\n");
        }
        flush();
        int8_t *t = src;
        src = dst;
        dst = t;
    }

    /* Pass 2: the whole image in one timed span (the layer calls and the
     * ping-pong between them, nothing else), final output compared. */
    src = act_a;
    dst = act_b;
    memcpy(src, seaclr_input, sizeof seaclr_input);
    const uint32_t t0 = timer_now();
    for (int i = 0; i < SEACLR_LAYER_COUNT; i++) {
        if (run_layer(&seaclr_layers[i], &preps[i], src, dst) != ARM_CMSIS_NN_SUCCESS)
            all_match = 0;
        int8_t *t = src;
        src = dst;
        dst = t;
    }
    const uint32_t t1 = timer_now();
    const seaclr_layer *last = &seaclr_layers[SEACLR_LAYER_COUNT - 1];
    if (memcmp(src, last->expected, (size_t)(last->out_h * last->out_w * last->out_c)) != 0)
        all_match = 0;
    put_str("image instructions ");
    put_u32((t0 - t1) * INSTRUCTIONS_PER_TICK);
    put_str(" ticks ");
    put_u32(t0 - t1);
    put_str(" layers_sum ");
    put_u32(sum_ticks * INSTRUCTIONS_PER_TICK);
    put_str(" match ");
    put_str(all_match ? "yes" : "no");
    put_str("\n");
    flush();
    return all_match ? 0 : 1;
}
