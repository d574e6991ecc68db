/* sdnotify — systemd readiness and watchdog for a libev daemon.
 *
 * Under systemd (Type=notify) sdnotify_ready() sends READY=1 and, when the
 * unit sets WatchdogSec=, starts a timer that sends WATCHDOG=1 at half the
 * interval from the loop thread — so a wedged loop gets the daemon
 * restarted. Outside systemd both calls do nothing.
 */
#ifndef DROVER_SDNOTIFY_H
#define DROVER_SDNOTIFY_H

#include <ev.h>

/* Tell systemd we are ready (status is a human line for systemctl status)
 * and start watchdog pings on loop using the caller-owned timer w. */
void sdnotify_ready(struct ev_loop *loop, ev_timer *w, const char *status);

/* Tell systemd we are stopping. */
void sdnotify_stopping(void);

#endif
