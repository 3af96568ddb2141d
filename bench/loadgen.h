/*
 * bench/loadgen.h — the modes of bench/loadgen shared between its files.
 */
#ifndef BD_BENCH_LOADGEN_H
#define BD_BENCH_LOADGEN_H

/*
 * Many-connection mode: `conns` keep-alive connections on one epoll thread send the raw HTTP
 * request `req` (borrowed) back to back for `secs` seconds. Prints one line:
 *   requests=N errors=E shed=S reconnects=R rps=A shed_rps=B p50_ms=C p99_ms=D
 * where requests/rps/p50/p99 count the 2xx answers only, shed the 429s and errors the other
 * statuses. Returns 0 when at least one 2xx came back.
 */
int loadgen_flood(int port, const char *req, int conns, double secs);

#endif
