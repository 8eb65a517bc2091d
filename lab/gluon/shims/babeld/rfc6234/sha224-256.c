/* Lab shim: SHA-256 comes from libcrypto (see sha.h). */
