/* One layer of a SeaCLR blob as the CMSIS-NN harness runs it. The exporter
 * (../export) writes an array of these, with the blob's data and the host
 * engine's expected output, into the build folder's model_data.h. */
#ifndef SEACLR_MODEL_H
#define SEACLR_MODEL_H
#include <stdint.h>

enum { SEACLR_CONV3X3 = 0, SEACLR_AVGPOOL = 1, SEACLR_LINEAR = 2 };

typedef struct {
    int32_t kind;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t stride;              /* conv only; padding is always 1 */
    int32_t input_zp, output_zp; /* real = scale * (q - zp) */
    int32_t act_min, act_max;
    uint32_t macs;
    const int8_t *weights;       /* conv OHWI, linear [out][in]; NULL for pool */
    const int32_t *bias;         /* NULL for pool */
    const int32_t *multipliers;  /* Q31, per output channel (pool: one) */
    const int32_t *shifts;       /* > 0 left, < 0 right (TFLM convention) */
    const int8_t *expected;      /* the host engine's output of this layer */
} seaclr_layer;

#endif
