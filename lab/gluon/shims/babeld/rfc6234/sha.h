/* Lab shim (lab/gluon/README.md): babeld's git submodule rfc6234 (RFC 6234's
 * SHA code) is not in the git archive of babeld-1.13.1 the lab builds from;
 * its SHA-256 calls are served by OpenSSL's libcrypto instead. */
#ifndef LAB_RFC6234_SHA_H
#define LAB_RFC6234_SHA_H
#include <stdint.h>
#include <openssl/sha.h>

enum { shaSuccess = 0, shaNull, shaInputTooLong, shaStateError, shaBadParam };
enum { SHA256HashSize = 32 };
typedef SHA256_CTX SHA256Context;

static inline int SHA256Reset(SHA256Context *c) { return SHA256_Init(c) == 1 ? shaSuccess : shaStateError; }
static inline int SHA256Input(SHA256Context *c, const uint8_t *b, unsigned int n)
{
	return SHA256_Update(c, b, n) == 1 ? shaSuccess : shaStateError;
}
static inline int SHA256Result(SHA256Context *c, uint8_t d[SHA256HashSize])
{
	return SHA256_Final(d, c) == 1 ? shaSuccess : shaStateError;
}
#endif
