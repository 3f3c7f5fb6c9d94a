/* Drives the `Live` network of controller.snn, compiled to a library by
 *   snnc build controller.snn --network Live --emit lib -o build/controller
 * step by step: before each step it injects the input spikes of that step into the spike
 * source "In" (an external input port), then prints the spikes of population "N" as
 * "STEP INDEX" lines (a spike in step k happened at time (k + 1) * dt).
 *
 * Usage: ./controller_demo [SEED] [STATE_FILE]
 * With STATE_FILE, the state after step 500 is saved there, reloaded, and the second half is
 * run from the reloaded state (which must give the same spikes as running straight on). */
#include "controller.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define STEPS 1000
#define CHANNELS 20
#define NEURONS 10

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, snnc_last_error());
    return 1;
}

int main(int argc, char **argv) {
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : snnc_default_seed();
    const char *state_file = argc > 2 ? argv[2] : NULL;
    SnncModel *model = snnc_create(seed);
    if (!model) return fail("snnc_create");
    if (snnc_population_size(model, "N") != NEURONS) return fail("population N");

    uint32_t input[CHANNELS];
    uint32_t spikes[NEURONS];
    for (uint64_t step = 0; step < STEPS; step++) {
        if (state_file && step == STEPS / 2) {
            if (snnc_save_state(model, state_file) != 0) return fail("snnc_save_state");
            if (snnc_reset(model) != 0) return fail("snnc_reset");
            if (snnc_load_state(model, state_file) != 0) return fail("snnc_load_state");
        }
        /* The input pattern: channel i fires in the steps k with (k + 7 i) % 37 == 0. */
        size_t n = 0;
        for (uint32_t i = 0; i < CHANNELS; i++) {
            if ((step + 7 * i) % 37 == 0) input[n++] = i;
        }
        if (snnc_inject_spikes(model, "In", input, n) != 0) return fail("snnc_inject_spikes");
        if (snnc_step(model, 1) != 0) return fail("snnc_step");
        int64_t count = snnc_spikes(model, "N", spikes, NEURONS);
        if (count < 0) return fail("snnc_spikes");
        for (int64_t j = 0; j < count && j < NEURONS; j++) {
            printf("%" PRIu64 " %" PRIu32 "\n", step, spikes[j]);
        }
    }
    snnc_destroy(model);
    return 0;
}
