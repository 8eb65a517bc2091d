/* Lab shim: BLAKE2s comes from libb2 (see blake2.h). */
