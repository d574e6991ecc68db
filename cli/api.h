/* api — the CLI's side of the droverd API socket.
 *
 * One ZeroMQ REQ socket per api_t, connected lazily; each api_call() sends
 * one packed ApiRequest frame and waits for one ApiResponse frame, up to a
 * timeout (10 s, or $DROVER_API_TIMEOUT_MS). A REQ socket that timed out is
 * stuck mid-exchange, so it is closed and the next call opens a new one.
 * Failures are reported here, once, as "drover: error: ..." on stderr, so
 * callers only map a non-zero return to exit status 2.
 *
 * Commands that follow something for a long time (run watch, logs -f) give
 * the client some patience (api_set_patience): a call that gets no answer
 * (droverd restarting: its socket gone or refusing, or a request lost with
 * the old process) is then retried on a fresh socket every
 * API_RETRY_INTERVAL_MS until droverd answers or the patience runs out,
 * with one note on stderr when contact is lost and one when it is back.
 */
#ifndef DROVER_CLI_API_H
#define DROVER_CLI_API_H

#include <stdbool.h>
#include <stdint.h>

#include "drover.pb-c.h"

#define API_DEFAULT_ENDPOINT   "ipc:///run/drover/api.sock"
#define API_DEFAULT_TIMEOUT_MS 10000
#define API_RETRY_INTERVAL_MS  500

typedef struct api api_t;

/* The endpoint to use: flag if not NULL, else $DROVER_API if set and not
 * empty, else the context's (context_setting), else API_DEFAULT_ENDPOINT.
 * The result is not owned by the caller. */
const char *api_endpoint(const char *flag);

/* A client for endpoint (copied). NULL, with the error printed, when the
 * timeout in the environment is malformed or ZeroMQ cannot start. The
 * caller frees it with api_destroy. */
api_t *api_new(const char *endpoint);

/* Close the socket and free the client; accepts NULL, nulls the pointer. */
void api_destroy(api_t **api);

/* Keep retrying calls that get no answer for up to ms milliseconds (0,
 * the default, reports the first missed answer as an error). Only for
 * requests that may safely be repeated (reads): a request droverd handled
 * just before it died is sent again. */
void api_set_patience(api_t *api, int64_t ms);

/* Whether a note about lost contact was printed on stderr since the last
 * call to this function (a caller redrawing the terminal starts afresh). */
bool api_take_outage(api_t *api);

/* With quiet set, an error answer from droverd is neither printed nor
 * recorded as the exit status: api_call returns -EREMOTEIO and the caller
 * reads it with api_last_error and decides (logs -f waiting for a step). */
void api_set_quiet_errors(api_t *api, bool quiet);

/* The last error answer's kind and text (valid until the next call), or
 * DROVER__API_ERROR_CODE__API_ERROR_OTHER and "" when there was none. */
Drover__ApiErrorCode api_last_error(const api_t *api, const char **text);

/* From any thread: make the call api is blocked in, if any, and every
 * later one fail at once (a daemon stopping: drover-web). Only
 * api_destroy is left to do with it. */
void api_interrupt(api_t *api);

/* The last error answer itself (its spec_errors: drover-web lists them),
 * handed to the caller (free it with drover__api_response__free_unpacked),
 * or NULL when the last call got none. */
Drover__ApiResponse *api_take_error_answer(api_t *api);

/* Print the last error answer (quiet mode) as api_call would have, and
 * record its exit status. */
void api_report_last_error(const api_t *api);

/* Send req and wait for the answer. On success returns 0 and stores the
 * response in *resp (the caller frees it with
 * drover__api_response__free_unpacked(*resp, NULL)). Returns a negative
 * errno, *resp NULL and the error printed when droverd does not answer in
 * time (-ETIMEDOUT), cannot be reached, answers garbage (-EPROTO), or
 * answers with a non-empty error (-EREMOTEIO). With patience, "no answer"
 * is only returned once the patience has run out. */
int api_call(api_t *api, const Drover__ApiRequest *req, Drover__ApiResponse **resp);

/* api_call for get_run: on success (*resp)->run is set. */
int api_get_run(api_t *api, const char *run_id, Drover__ApiResponse **resp);

/* api_new + api_call + api_destroy for commands that make one request. */
int api_call_once(const char *endpoint_flag, const Drover__ApiRequest *req,
                  Drover__ApiResponse **resp);

/* --key FILE / --server-key FILE (global flags): this user's secret key
 * and droverd's public key, for a tcp:// API endpoint (CURVE). Without
 * the flags, $DROVER_KEY and $DROVER_SERVER_KEY, else the context's. */
void api_set_key_flag(bool server, const char *path);

#endif
