/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * respondd provider of gluon-464xlat: what the map (yanic, meshviewer) and
 * the status page learn of a node's 464xlat. It asks each daemon for its
 * `status` over the daemon's control socket and picks the figures a
 * community watches; the keys are documented in docs/respondd.md.
 *
 * C, as Gluon's providers are: respondd dlopen()s it (Gluon builds
 * src/respondd.c into /usr/lib/respondd/<package>.so). respondd answers
 * requests one at a time, so a daemon that hangs must not hang it: every
 * socket has a short timeout, and a daemon that does not answer is left out
 * of the reply.
 */

#include <respondd.h>

#include <json-c/json.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCK_DIR "/var/run/"
#define TIMEOUT_MS 500
/* platd's status with a session count per CLAT is the largest reply */
#define MAX_REPLY (256 * 1024)

/* status asks a daemon's control socket for `status` and parses its one-line
 * JSON reply; NULL when the daemon does not run or does not answer in time. */
static struct json_object *status(const char *daemon) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 0, .tv_usec = TIMEOUT_MS * 1000};
	struct json_object *ret = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), SOCK_DIR "%s.sock", daemon);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	if (write(fd, "status\n", 7) != 7)
		goto out;

	for (;;) {
		if (len + 4096 + 1 > cap) {
			if (cap >= MAX_REPLY)
				goto out;
			cap = cap ? 2 * cap : 16384;
			char *n = realloc(buf, cap);
			if (!n)
				goto out;
			buf = n;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += r;
		if (memchr(buf + len - r, '\n', r))
			break;
	}
	if (len == 0)
		goto out;
	buf[len] = 0;
	ret = json_tokener_parse(buf);
	if (ret && !json_object_is_type(ret, json_type_object)) {
		json_object_put(ret);
		ret = NULL;
	}
out:
	free(buf);
	close(fd);
	return ret;
}

/* get is obj's member key, or NULL. */
static struct json_object *get(struct json_object *obj, const char *key) {
	struct json_object *v;
	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

/* copy adds a new reference of from's member key to to, as name. */
static void copy(struct json_object *to, const char *name, struct json_object *from, const char *key) {
	struct json_object *v = get(from, key);
	if (v)
		json_object_object_add(to, name, json_object_get(v));
}

/* copy_string adds a string member only when it is not empty. */
static void copy_string(struct json_object *to, const char *name, struct json_object *from, const char *key) {
	struct json_object *v = get(from, key);
	if (v && json_object_is_type(v, json_type_string) && *json_object_get_string(v))
		json_object_object_add(to, name, json_object_get(v));
}

/* sum is from's member key plus fast's member fkey, as numbers (either may
 * be missing). */
static void sum(struct json_object *to, const char *name, struct json_object *from, const char *key,
		struct json_object *fast, const char *fkey) {
	struct json_object *a = get(from, key), *b = get(fast, fkey);
	if (!a && !b)
		return;
	int64_t n = (a ? json_object_get_int64(a) : 0) + (b ? json_object_get_int64(b) : 0);
	json_object_object_add(to, name, json_object_new_int64(n));
}

/* translated is a daemon's translated packets per direction: its TUN
 * engine's and its kernel fast path's (clatd's fastpath_counters). */
static struct json_object *translated(struct json_object *st) {
	struct json_object *ret = json_object_new_object();
	struct json_object *counters = get(st, "counters"), *fast = get(st, "fastpath_counters");
	sum(ret, "4to6", counters, "out_4to6", fast, "fast_4to6");
	sum(ret, "6to4", counters, "out_6to4", fast, "fast_6to4");
	return ret;
}

/* nodeinfo: software.xlat (version), network.xlat (roles and prefixes). */
static struct json_object *respondd_provider_nodeinfo(void) {
	struct json_object *clatd = status("clatd"), *platd = status("platd");
	if (!clatd && !platd)
		return NULL;

	struct json_object *ret = json_object_new_object();
	struct json_object *software = json_object_new_object(), *sw = json_object_new_object();
	copy(sw, "version", clatd ? clatd : platd, "version");
	json_object_object_add(software, "xlat", sw);
	json_object_object_add(ret, "software", software);

	struct json_object *network = json_object_new_object(), *net = json_object_new_object();
	struct json_object *roles = json_object_new_array();
	if (clatd)
		json_object_array_add(roles, json_object_new_string("clat"));
	if (platd)
		json_object_array_add(roles, json_object_new_string("plat"));
	json_object_object_add(net, "roles", roles);
	copy_string(net, "clat_prefix", clatd, "clat_prefix");
	copy_string(net, "client_net4", clatd, "client_net");
	copy_string(net, "plat_prefix", platd, "plat_prefix");
	json_object_object_add(network, "xlat", net);
	json_object_object_add(ret, "network", network);

	json_object_put(clatd);
	json_object_put(platd);
	return ret;
}

/* plat is the PLAT prefixd chose, its Babel metric and the switches so far. */
static struct json_object *plat(struct json_object *prefixd) {
	struct json_object *ret = json_object_new_object();
	struct json_object *cur = get(prefixd, "current");
	const char *current = cur ? json_object_get_string(cur) : "";
	if (*current)
		json_object_object_add(ret, "prefix", json_object_get(cur));
	struct json_object *cands = get(prefixd, "candidates");
	if (*current && cands && json_object_is_type(cands, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(cands); i++) {
			struct json_object *c = json_object_array_get_idx(cands, i);
			struct json_object *p = get(c, "prefix");
			if (p && !strcmp(json_object_get_string(p), current)) {
				copy(ret, "metric", c, "metric");
				copy(ret, "own", c, "own");
				break;
			}
		}
	}
	copy(ret, "switches", prefixd, "switches_total");
	return ret;
}

/* clients is what l3roamd serves and handed over or took over. */
static struct json_object *clients(struct json_object *l3roamd) {
	struct json_object *ret = json_object_new_object(), *counters = get(l3roamd, "counters");
	copy(ret, "total", l3roamd, "clients");
	copy(ret, "ipv4", l3roamd, "clients_464xlat");
	/* an INFO with a lease answers this node's CLAIM: an IPv4 client came */
	struct json_object *in = get(counters, "info_xlat_received"), *out = get(counters, "claims_answered");
	json_object_object_add(ret, "roamed_in", json_object_new_int64(in ? json_object_get_int64(in) : 0));
	json_object_object_add(ret, "roamed_out", json_object_new_int64(out ? json_object_get_int64(out) : 0));
	return ret;
}

/* statistics: xlat.plat, xlat.clients, xlat.clat and, on an exit, xlat.exit. */
static struct json_object *respondd_provider_statistics(void) {
	struct json_object *clatd = status("clatd"), *platd = status("platd");
	struct json_object *prefixd = status("prefixd"), *l3roamd = status("l3roamd");
	if (!clatd && !platd && !prefixd && !l3roamd)
		return NULL;

	struct json_object *x = json_object_new_object();
	if (prefixd)
		json_object_object_add(x, "plat", plat(prefixd));
	if (l3roamd)
		json_object_object_add(x, "clients", clients(l3roamd));
	if (clatd) {
		struct json_object *c = json_object_new_object(), *counters = get(clatd, "counters");
		json_object_object_add(c, "translated", translated(clatd));
		copy(c, "dropped", counters, "drops");
		copy(c, "icmp_errors_sent", counters, "icmp_errors_sent");
		json_object_object_add(x, "clat", c);
	}
	if (platd) {
		struct json_object *e = json_object_new_object(), *counters = get(platd, "counters");
		struct json_object *sessions = get(platd, "sessions");
		copy(e, "sessions", sessions, "total");
		copy(e, "ports_in_use", sessions, "ports_in_use");
		copy(e, "ports_total", sessions, "ports_total");
		copy(e, "full", platd, "refusing_new_sessions");
		copy(e, "refused", platd, "refused");
		json_object_object_add(e, "translated", translated(platd));
		copy(e, "dropped", counters, "drops");
		json_object_object_add(x, "exit", e);
	}

	json_object_put(clatd);
	json_object_put(platd);
	json_object_put(prefixd);
	json_object_put(l3roamd);

	struct json_object *ret = json_object_new_object();
	json_object_object_add(ret, "xlat", x);
	return ret;
}

__attribute__((visibility("default")))
const struct respondd_provider_info respondd_providers[] = {
	{"nodeinfo", respondd_provider_nodeinfo},
	{"statistics", respondd_provider_statistics},
	{},
};
