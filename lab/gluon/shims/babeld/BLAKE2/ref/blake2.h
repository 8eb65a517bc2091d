/* Lab shim (lab/gluon/README.md): babeld's git submodule BLAKE2 is not in the
 * git archive of babeld-1.13.1 the lab builds from; Debian's libb2 has the
 * same reference API (blake2s_state, blake2s_init_key, ...). */
#include <blake2.h>
