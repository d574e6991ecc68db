/* provider — one call of a node pool's provider program, off the loop's
 * back: `COMMAND VERB ARGS...` with a JSON request on stdin, its stdout
 * collected, its stderr's last line kept, killed (its whole process group)
 * at the pool's call timeout. README "Providers" has the protocol.
 *
 * The program is started with posix_spawn (no copy of droverd's memory,
 * every descriptor but the three pipes closed, in its own session so a
 * timeout kills its children too) and watched by the loop (ev_io on the
 * pipes, ev_child for its exit, ev_timer for the timeout): nothing blocks.
 * A call ends when the program has exited; what it wrote before is read
 * to the end, and a grandchild that keeps a pipe open (an agent the local
 * provider starts) does not hold the call.
 */
#ifndef DROVER_PROVIDER_H
#define DROVER_PROVIDER_H

#include <ev.h>
#include <stdint.h>

typedef struct provider_call provider_call_t;

/* How a call ended: exit status 0..255; PROVIDER_KILLED (the timeout, or
 * a signal), PROVIDER_NOT_STARTED (spawn failed: errline says why). */
enum { PROVIDER_KILLED = -1, PROVIDER_NOT_STARTED = -2 };

/* Called once on the loop when the call ends: out is its stdout (NUL
 * terminated, at most 4 MiB kept), errline the last non-empty line it
 * wrote on stderr ("" if none) or why it could not run; both valid only
 * during the callback. The call is freed after it returns. */
typedef void (*provider_done_fn)(void *arg, int status, const char *out, const char *errline);

/* Start argv[0] (an absolute path; argv NULL-terminated, copied) with
 * request on stdin and DROVER_PROVIDER_TIMEOUT set to timeout_ms in whole
 * seconds. Never NULL: a spawn failure is reported through done from the
 * loop's next iteration, like any other end. */
provider_call_t *provider_call(struct ev_loop *loop, char *const argv[], const char *request,
                               uint64_t timeout_ms, provider_done_fn done, void *arg);

/* Kill the call's process group and free it without calling done
 * (shutdown); NULLs the pointer. Accepts NULL. */
void provider_cancel(provider_call_t **c);

#endif
