/* sdnotify — see sdnotify.h. */
#include "sdnotify.h"

#include <stdint.h>
#include <systemd/sd-daemon.h>

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    sd_notify(0, "WATCHDOG=1");
}

void sdnotify_ready(struct ev_loop *loop, ev_timer *w, const char *status)
{
    uint64_t usec = 0;
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        double interval = (double)usec / 2e6;
        ev_timer_init(w, on_watchdog, interval, interval);
        ev_timer_start(loop, w);
    }
}

void sdnotify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}
