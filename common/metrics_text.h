/* metrics_text — a MetricsView (droverd's metrics, proto/drover.proto)
 * as the Prometheus text exposition format (version 0.0.4), for
 * `drover metrics` and drover-web's GET /metrics.
 *
 * The view names, documents and types its families (droverd decides
 * them: README "Metrics"); this file only renders and checks them, so
 * what a scraper reads is always well-formed: names and label names
 * valid, label values and help escaped, histogram buckets made
 * cumulative with the +Inf bucket equal to _count.
 */
#ifndef DROVER_METRICS_TEXT_H
#define DROVER_METRICS_TEXT_H

#include "drover.pb-c.h"
#include "strbuf.h"

/* The content type of what metrics_text writes (an HTTP server's header). */
#define METRICS_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Append m to out as text: per family "# HELP", "# TYPE", then its
 * samples (a histogram's as NAME_bucket{...,le="B"} with cumulative
 * counts, le="+Inf", NAME_sum, NAME_count). 0, or -EINVAL when m is not
 * renderable (a name or label name Prometheus refuses, a label named
 * "le" in a histogram or starting "__", an unknown type, a family named
 * twice, a histogram whose bounds do not increase or whose bucket counts
 * are not one more than its bounds); out is then left as it was. m stays
 * the caller's. */
int metrics_text(const Drover__MetricsView *m, strbuf_t *out);

#endif
