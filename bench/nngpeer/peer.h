// The C side of ferry-nngpeer: main.go parses the flags and calls one of
// peer_serve or peer_run; everything that touches a message is in peer.c.
#ifndef FERRY_NNGPEER_H
#define FERRY_NNGPEER_H

#include <stdint.h>

// Patterns.
enum { PEER_PAIR, PEER_REQREP, PEER_PUSHPULL, PEER_PUBSUB, PEER_FANOUT };

// What to do: serve's roles and run's modes.
enum { PEER_ECHO, PEER_SOURCE, PEER_LAT, PEER_TPUT };

struct peer_opts {
	int pattern;
	int what;         // PEER_ECHO or PEER_SOURCE (serve), PEER_LAT or PEER_TPUT (run)
	const char *url;  // the first address
	const char *url2; // the second address (pushpull and pubsub echo/lat), or ""
	int64_t size;     // payload bytes
	int queue;        // NNG_OPT_SENDBUF and NNG_OPT_RECVBUF, 1..8192
	int subs;         // SUB sockets (fanout tput)
	int64_t dur_ns, warm_ns, max_samples;
};

struct peer_result {
	int64_t samples, p50ns, p99ns, minns, maxns, msgs;
	double seconds, msgs_per_s;
};

// peer_serve listens, prints "ready" and runs its role until stdin ends
// (then the process exits 0). It returns only on failure: -1, with the
// reason in peer_error().
int peer_serve(const struct peer_opts *o);

// peer_run dials and measures: 0 with *r filled in, or -1 with the reason
// in peer_error().
int peer_run(const struct peer_opts *o, struct peer_result *r);

const char *peer_error(void);

#endif
