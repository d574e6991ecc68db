/* test_metrics_text — the Prometheus text exposition of a MetricsView
 * (common/metrics_text.c): HELP and TYPE lines, label values and help
 * escaped, histogram buckets cumulative with +Inf equal to _count,
 * numbers as Prometheus reads them, and views it must refuse (bad names,
 * a histogram's reserved "le", malformed buckets) leave the output as it
 * was. promtool checks real droverd output in
 * tests/integration/test_metrics.py.
 */
#include "helpers.h"

#include <errno.h>
#include <math.h>

#include "metrics_text.h"

TestSuite(metrics_text, .timeout = 30);

static Drover__KeyValue kv(const char *k, const char *v)
{
    Drover__KeyValue x = DROVER__KEY_VALUE__INIT;
    x.key = (char *)k;
    x.value = (char *)v;
    return x;
}

/* Render one family of one sample; the text (caller frees) or NULL. */
static char *render(Drover__MetricFamily *f)
{
    Drover__MetricsView v = DROVER__METRICS_VIEW__INIT;
    v.n_families = 1;
    v.families = &f;
    strbuf_t b = {0};
    if (metrics_text(&v, &b) < 0) {
        cr_assert_eq(b.len, 0, "a refused view wrote %zu bytes", b.len);
        sb_free(&b);
        return NULL;
    }
    return sb_take(&b);
}

Test(metrics_text, counter_with_escaped_labels_and_help)
{
    Drover__KeyValue l1 = kv("kind", "a\"b\\c\nd"), l2 = kv("agent", "x");
    Drover__KeyValue *ls[] = {&l1, &l2};
    Drover__MetricSample s = DROVER__METRIC_SAMPLE__INIT, s2 = DROVER__METRIC_SAMPLE__INIT;
    s.n_labels = 2;
    s.labels = ls;
    s.value = 3;
    s2.value = 0.25;
    Drover__MetricSample *ss[] = {&s, &s2};
    Drover__MetricFamily f = DROVER__METRIC_FAMILY__INIT;
    f.name = "drover_x_total";
    f.help = "what \\ it\ncounts";
    f.type = "counter";
    f.n_samples = 2;
    f.samples = ss;
    char *t = render(&f);
    cr_assert_str_eq(t, "# HELP drover_x_total what \\\\ it\\ncounts\n"
                        "# TYPE drover_x_total counter\n"
                        "drover_x_total{kind=\"a\\\"b\\\\c\\nd\",agent=\"x\"} 3\n"
                        "drover_x_total 0.25\n");
    free(t);
}

Test(metrics_text, histogram_buckets_are_cumulative_and_end_with_inf)
{
    double bounds[] = {0.005, 0.1, 1, 2.5};
    uint64_t buckets[] = {2, 0, 3, 1, 4}; /* the last: above 2.5 */
    Drover__KeyValue l = kv("pool", "gpu");
    Drover__KeyValue *ls[] = {&l};
    Drover__MetricSample s = DROVER__METRIC_SAMPLE__INIT;
    s.n_labels = 1;
    s.labels = ls;
    s.n_bounds = 4;
    s.bounds = bounds;
    s.n_buckets = 5;
    s.buckets = buckets;
    s.sum = 12.5;
    Drover__MetricSample *ss[] = {&s};
    Drover__MetricFamily f = DROVER__METRIC_FAMILY__INIT;
    f.name = "drover_lat_seconds";
    f.help = "h";
    f.type = "histogram";
    f.n_samples = 1;
    f.samples = ss;
    char *t = render(&f);
    cr_assert_str_eq(t, "# HELP drover_lat_seconds h\n"
                        "# TYPE drover_lat_seconds histogram\n"
                        "drover_lat_seconds_bucket{pool=\"gpu\",le=\"0.005\"} 2\n"
                        "drover_lat_seconds_bucket{pool=\"gpu\",le=\"0.1\"} 2\n"
                        "drover_lat_seconds_bucket{pool=\"gpu\",le=\"1\"} 5\n"
                        "drover_lat_seconds_bucket{pool=\"gpu\",le=\"2.5\"} 6\n"
                        "drover_lat_seconds_bucket{pool=\"gpu\",le=\"+Inf\"} 10\n"
                        "drover_lat_seconds_sum{pool=\"gpu\"} 12.5\n"
                        "drover_lat_seconds_count{pool=\"gpu\"} 10\n");
    free(t);
    /* no labels: le alone */
    s.n_labels = 0;
    t = render(&f);
    cr_assert(strstr(t, "drover_lat_seconds_bucket{le=\"+Inf\"} 10\n"), "%s", t);
    cr_assert(strstr(t, "drover_lat_seconds_count 10\n"), "%s", t);
    free(t);
}

Test(metrics_text, numbers_as_prometheus_reads_them)
{
    double vals[] = {0, 1e6, 0.1, 1.0 / 3, -2, NAN, INFINITY, -INFINITY, 18446744073709551616.0};
    const char *want[] = {"0",   "1000000", "0.1",  "0.3333333333333333",    "-2",
                          "NaN", "+Inf",    "-Inf", "1.8446744073709552e+19"};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        Drover__MetricSample s = DROVER__METRIC_SAMPLE__INIT;
        s.value = vals[i];
        Drover__MetricSample *ss[] = {&s};
        Drover__MetricFamily f = DROVER__METRIC_FAMILY__INIT;
        f.name = "drover_g";
        f.help = "";
        f.type = "gauge";
        f.n_samples = 1;
        f.samples = ss;
        char *t = render(&f), line[64];
        snprintf(line, sizeof line, "\ndrover_g %s\n", want[i]);
        cr_assert(strstr(t, line), "%g: %s", vals[i], t);
        if (isfinite(vals[i]))
            cr_assert_eq(strtod(want[i], NULL), vals[i]);
        free(t);
    }
}

Test(metrics_text, refuses_what_prometheus_would)
{
    Drover__KeyValue good = kv("kind", "v");
    Drover__KeyValue *ls[] = {&good, &good};
    double bounds[] = {1, 0.5};
    uint64_t buckets[] = {1, 1, 1};
    struct {
        const char *name, *type, *label;
        size_t n_labels, n_bounds, n_buckets;
    } bad[] = {
        {"drover x", "gauge", "kind", 1, 0, 0},     /* space in the name */
        {"1drover", "gauge", "kind", 1, 0, 0},      /* leading digit */
        {"", "gauge", "kind", 1, 0, 0},             /* empty */
        {"drover_x", "summary", "kind", 1, 0, 0},   /* a type it does not write */
        {"drover_x", "gauge", "a:b", 1, 0, 0},      /* colon in a label name */
        {"drover_x", "gauge", "__name__", 1, 0, 0}, /* reserved */
        {"drover_x", "gauge", "kind", 2, 0, 0},     /* a label twice */
        {"drover_x", "histogram", "le", 1, 1, 2},   /* le is the histogram's */
        {"drover_x", "histogram", "kind", 1, 1, 1}, /* buckets != bounds + 1 */
        {"drover_x", "histogram", "kind", 1, 2, 3}, /* bounds not increasing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Drover__KeyValue l = kv(bad[i].label, "v");
        Drover__KeyValue *mine[] = {&l, &good};
        Drover__MetricSample s = DROVER__METRIC_SAMPLE__INIT;
        s.n_labels = bad[i].n_labels;
        s.labels = bad[i].n_labels == 2 ? ls : mine;
        s.n_bounds = bad[i].n_bounds;
        s.bounds = bounds;
        s.n_buckets = bad[i].n_buckets;
        s.buckets = buckets;
        Drover__MetricSample *ss[] = {&s};
        Drover__MetricFamily f = DROVER__METRIC_FAMILY__INIT;
        f.name = (char *)bad[i].name;
        f.help = "";
        f.type = (char *)bad[i].type;
        f.n_samples = 1;
        f.samples = ss;
        char *t = render(&f);
        cr_expect_null(t, "case %zu rendered: %s", i, t ? t : "");
        free(t);
    }
    /* a family named twice: refused, the output untouched */
    Drover__MetricFamily f = DROVER__METRIC_FAMILY__INIT;
    f.name = "drover_x";
    f.help = "";
    f.type = "gauge";
    Drover__MetricFamily *fs[] = {&f, &f};
    Drover__MetricsView v = DROVER__METRICS_VIEW__INIT;
    v.n_families = 2;
    v.families = fs;
    strbuf_t b = {0};
    sb_puts(&b, "before\n");
    cr_assert_eq(metrics_text(&v, &b), -EINVAL);
    cr_assert_str_eq(b.buf, "before\n");
    v.n_families = 1; /* once is fine, and appended */
    cr_assert_eq(metrics_text(&v, &b), 0);
    cr_assert_str_eq(b.buf, "before\n# HELP drover_x \n# TYPE drover_x gauge\n");
    sb_free(&b);
}
