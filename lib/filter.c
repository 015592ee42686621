/* filter.c — keep/drop decisions from scores and writing the kept examples (filter.h). */
#include "filter.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "check.h"
#include "json.h"
#include "progress.h"
#include "shard.h"

/* The random numbers of docs/deploy.md ("The selection, exactly"): s = seed ^ 0x5EEDF11E7;
 * U(x) = one splitmix64 step (x += γ, then the mix) as a 53-bit double in [0, 1). */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uniform01(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1.0p-53; }

/* Sort order: score descending, then example index ascending. */
typedef struct { double score; uint64_t index; } Ranked;
static int ranked_before(const Ranked *x, const Ranked *y) {
    return x->score != y->score ? x->score > y->score : x->index < y->index;
}

/* The counts of docs/deploy.md ("The counts, exactly"): each product rounded to double
 * on its own (separate statements: no fused multiply-add, whatever the compiler's
 * -ffp-contract default), so that any IEEE 754 implementation gets the same count. */
static uint64_t round_count(double keep, uint64_t n) {
    double x = keep * (double)n;
    x += 0.5;
    uint64_t k = (uint64_t)floor(x);
    return k > n ? n : k;
}

static uint64_t ceil_count(double keep, uint64_t b) {
    double x = keep * (double)b;
    x -= 1e-9;
    uint64_t k = (uint64_t)ceil(x);
    return k > b ? b : k;
}

static void sift_down(Ranked *r, uint64_t root, uint64_t n) {   /* heap: the last-ranked on top */
    for (uint64_t c; (c = 2 * root + 1) < n; root = c) {
        if (c + 1 < n && ranked_before(&r[c], &r[c + 1])) c++;
        if (!ranked_before(&r[root], &r[c])) return;
        Ranked t = r[root]; r[root] = r[c]; r[c] = t;
    }
}

/* Sorts r[0..n) in place (introsort): no index is ranked twice, so the order is the one
 * ranked_before defines whatever the algorithm. In place because glibc's qsort takes a
 * second array of the same size for a merge sort: 16 more bytes per example at the
 * dr-filter's peak. */
static void sort_ranked(Ranked *r, uint64_t n, int depth) {
    while (n > 16) {
        if (depth-- == 0) {   /* quicksort gone quadratic: heapsort */
            for (uint64_t i = n / 2; i-- > 0;) sift_down(r, i, n);
            for (uint64_t i = n - 1; i > 0; i--) {
                Ranked t = r[0]; r[0] = r[i]; r[i] = t;
                sift_down(r, 0, i);
            }
            return;
        }
        /* median of three to r[0], then Hoare's partition around it */
        uint64_t m = n / 2;
        Ranked *a = &r[0], *b = &r[m], *c = &r[n - 1], *med;
        if (ranked_before(a, b)) med = ranked_before(b, c) ? b : ranked_before(a, c) ? c : a;
        else med = ranked_before(a, c) ? a : ranked_before(b, c) ? c : b;
        Ranked p = *med; *med = r[0]; r[0] = p;
        uint64_t i = 0, j = n;
        for (;;) {
            do i++; while (i < n && ranked_before(&r[i], &p));
            do j--; while (ranked_before(&p, &r[j]));
            if (i >= j) break;
            Ranked t = r[i]; r[i] = r[j]; r[j] = t;
        }
        r[0] = r[j]; r[j] = p;   /* r[0..j) before p, r(j..n) after it */
        if (j < n - j - 1) {      /* the smaller side by recursion: stack depth log n */
            sort_ranked(r, j, depth);
            r += j + 1;
            n -= j + 1;
        } else {
            sort_ranked(r + j + 1, n - j - 1, depth);
            n = j;
        }
    }
    for (uint64_t i = 1; i < n; i++) {   /* insertion sort of the short rest */
        Ranked t = r[i];
        uint64_t k = i;
        for (; k > 0 && ranked_before(&t, &r[k - 1]); k--) r[k] = r[k - 1];
        r[k] = t;
    }
}

/* ranked[0..n) sorted best first. */
static Ranked *rank_all(const double *scores, uint64_t n, double sign) {
    Ranked *r = xmalloc((n ? n : 1) * sizeof *r);
    for (uint64_t i = 0; i < n; i++) r[i] = (Ranked){ sign * scores[i], i };
    int depth = 0;
    for (uint64_t k = n; k > 1; k >>= 1) depth += 2;
    sort_ranked(r, n, depth);
    return r;
}

void filter_select(const FilterOptions *o, const double *scores, uint64_t n, uint8_t *keep) {
    double sign = o->invert ? -1.0 : 1.0;
    uint64_t rng = o->seed ^ 0x5eedf11e7ull;
    memset(keep, 0, n);
    Progress bar;   /* examples decided: batch by batch, or all at once after a sort */
    if (o->progress) {
        progress_start(&bar, "select", "examples", (double)n);
        progress_show(&bar);   /* on a terminal: a sort of many examples has begun */
    }
    switch (o->policy) {
    case FILTER_TOP: {
        Ranked *r = rank_all(scores, n, sign);
        uint64_t k = round_count(o->keep, n);
        for (uint64_t i = 0; i < k; i++) keep[r[i].index] = 1;
        free(r);
        break;
    }
    case FILTER_MIDDLE: {
        Ranked *r = rank_all(scores, n, sign);
        uint64_t k = round_count(o->keep, n), skip = (n - k) / 2;
        for (uint64_t i = skip; i < skip + k; i++) keep[r[i].index] = 1;
        free(r);
        break;
    }
    case FILTER_PER_BATCH: {
        uint64_t B = o->batch > 0 ? (uint64_t)o->batch : 1;
        for (uint64_t start = 0; start < n; start += B) {
            uint64_t b = n - start < B ? n - start : B;
            Ranked *r = rank_all(scores + start, b, sign);
            uint64_t k = ceil_count(o->keep, b);
            for (uint64_t i = 0; i < k; i++) keep[start + r[i].index] = 1;
            free(r);
            if (o->progress) progress_update(&bar, (double)(start + b));
        }
        break;
    }
    case FILTER_CDF: {
        /* q = (number of examples ranked at or below it, itself included) / n: the best
         * 1, the worst 1/n; tied scores get different q (the earlier the higher). */
        Ranked *r = rank_all(scores, n, sign);
        double a = (1.0 - o->keep) / o->keep;
        for (uint64_t pos = 0; pos < n; pos++) {
            double q = (double)(n - pos) / (double)n;
            double p = pow(q, a);
            /* one draw per example, from its index i (shard order), not its rank:
             * u = U(s ^ i·γ) */
            uint64_t s = rng ^ (r[pos].index * 0x9e3779b97f4a7c15ull);
            if (uniform01(&s) < p) keep[r[pos].index] = 1;
        }
        free(r);
        break;
    }
    case FILTER_RANDOM: {
        uint64_t k = round_count(o->keep, n);
        uint64_t *perm = xmalloc((n ? n : 1) * sizeof *perm);
        for (uint64_t i = 0; i < n; i++) perm[i] = i;
        /* partial Fisher–Yates with one stream of draws: the t-th hashes s + (t+1)·γ.
         * ⌊u·m⌋ from a 53-bit u is uniform to m·2^-53 relative; kept as it is so that
         * earlier runs' subsets stay reproducible (docs/deploy.md). */
        for (uint64_t i = 0; i < k; i++) {
            double x = uniform01(&rng) * (double)(n - i);
            uint64_t j = i + (uint64_t)x;
            if (j >= n) j = n - 1;
            uint64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
            keep[perm[i]] = 1;
        }
        free(perm);
        break;
    }
    case FILTER_MIN_SCORE:
        for (uint64_t i = 0; i < n; i++)
            keep[i] = o->invert ? scores[i] < o->min_score : scores[i] >= o->min_score;
        break;
    default:
        CHECK(0, "unknown filter policy %d", o->policy);
    }
    if (o->progress) {
        progress_update(&bar, (double)n);
        progress_abort(&bar);   /* the next step's bar replaces it */
    }
}

static const char *const doc_score_names[] = { "mean", "min", "max", "first" };

int filter_doc_score_parse(const char *name) {
    for (int k = 0; k < 4; k++)
        if (!strcmp(name, doc_score_names[k])) return k;
    return -1;
}

const char *filter_doc_score_name(int how) { return how >= 0 && how < 4 ? doc_score_names[how] : "?"; }

/* A document's examples are consecutive in shard order. */
static int starts_document(const DataLoader *d, uint64_t i) {
    if (i == 0) return 1;
    DataExample e = data_example(d, i), p = data_example(d, i - 1);
    return e.doc != p.doc || e.shard != p.shard;
}

void filter_documents(const DataLoader *d, const double *s, int how, FilterDocs *docs) {
    uint64_t n = data_num_examples(d), m = data_num_docs(d);   /* those with examples */
    docs->n = m;
    docs->first_example = xmalloc((m ? m : 1) * sizeof *docs->first_example);
    docs->score = xmalloc((m ? m : 1) * sizeof *docs->score);
    double sum = 0, weight = 0;
    uint64_t j = 0;
    for (uint64_t i = 0; i < n; i++) {
        DataExample e = data_example(d, i);
        if (starts_document(d, i)) {
            if (i > 0 && how == FILTER_DOC_MEAN) docs->score[j - 1] = sum / weight;
            docs->first_example[j++] = i;
            sum = weight = 0;
            docs->score[j - 1] = s[i];   /* min, max, first: the first value */
        }
        double *x = &docs->score[j - 1];
        if (how == FILTER_DOC_MIN && s[i] < *x) *x = s[i];
        if (how == FILTER_DOC_MAX && s[i] > *x) *x = s[i];
        sum += (double)e.length * s[i];
        weight += (double)e.length;
    }
    CHECK(j == m, "%" PRIu64 " documents with examples, %" PRIu64 " found", m, j);
    if (m > 0 && how == FILTER_DOC_MEAN) docs->score[m - 1] = sum / weight;
}

void filter_docs_free(FilterDocs *docs) {
    free(docs->first_example);
    free(docs->score);
    memset(docs, 0, sizeof *docs);
}

void filter_cut(const double *scores, const uint8_t *keep, uint64_t n, FilterCut *c) {
    memset(c, 0, sizeof *c);
    for (uint64_t i = 0; i < n; i++) {
        double x = scores[i];
        if (keep[i]) {
            if (!c->kept++) c->lowest_kept = c->highest_kept = x;
            if (x < c->lowest_kept) c->lowest_kept = x;
            if (x > c->highest_kept) c->highest_kept = x;
        } else {
            if (!c->dropped++) c->lowest_dropped = c->highest_dropped = x;
            if (x < c->lowest_dropped) c->lowest_dropped = x;
            if (x > c->highest_dropped) c->highest_dropped = x;
        }
    }
}

/* Refuses an output that would replace or remove one of its own input shards. */
static int check_not_input(const DataLoader *d, const char *dir, const char *prefix) {
    char *out = realpath(dir, NULL);
    if (!out) return 0;   /* not there yet: it cannot hold an input */
    int rc = 0;
    for (size_t k = 0; k < data_num_shards(d) && rc == 0; k++) {
        char *in = realpath(data_shard_path(d, k), NULL);
        char *slash = in ? strrchr(in, '/') : NULL;
        if (slash) {
            *slash = 0;
            if (strcmp(in, out) == 0 && drs_numbered_name(slash + 1, prefix) >= 0)
                rc = dr_seterr("%s: the output %s/%s-NNNNN.drs would replace the input shard %s: "
                               "choose another -o or --prefix", dir, dir, prefix,
                               data_shard_path(d, k));
        }
        free(in);
    }
    free(out);
    return rc;
}

int filter_write(DataLoader *d, const FilterDocs *docs, const uint8_t *keep_mask, const char *dir,
                 const char *prefix, uint64_t shard_bytes, int allow_empty, FILE *paths, FilterSummary *sum) {
    memset(sum, 0, sizeof *sum);
    if (check_not_input(d, dir, prefix) != 0) return -1;
    char *made = NULL;   /* the topmost directory this run created: removed if it fails or is interrupted */
    if (dr_make_output_dirs(dir, &made) != 0) return -1;
    uint64_t n = docs ? docs->n : data_num_examples(d);
    const DataOptions *opt = data_options(d);
    uint32_t *tok = docs ? NULL : xmalloc(((size_t)opt->seq_len + 1) * sizeof *tok);
    DrOutputSet done = {0};   /* shards completed so far, under temporary names */
    DrsWriter *w = NULL;
    int rc = 0;
    uint64_t n_keep = 0;   /* the work: reading and writing the kept units */
    for (uint64_t i = 0; i < n; i++) n_keep += keep_mask[i] != 0;
    Progress bar;
    progress_start(&bar, "write", docs ? "documents" : "examples", (double)n_keep);
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        uint64_t x = docs ? docs->first_example[i] : i;   /* the unit's (first) example */
        DataExample e = data_example(d, x);
        uint32_t length = docs ? data_document_length(d, x) : e.length;
        sum->units++;
        sum->tokens += length;
        if (!keep_mask[i]) continue;
        if (!w) {
            char *path = drs_numbered_path(dir, prefix, done.n);
            w = drs_writer_open(path, data_vocab_size(d), data_fingerprint(d),
                                data_tokenizer_spec(d));
            free(path);
            if (!w) { rc = -1; break; }
        }
        if (docs) {   /* the whole document, with its own id */
            const uint32_t *t;
            if ((rc = data_read_document(d, x, &t, &length)) == 0)
                rc = drs_writer_add(w, data_example_doc_id(d, x), data_example_source(d, x), t, length);
        } else if ((rc = data_read_example(d, i, tok)) == 0) {
            uint64_t key[2] = { data_example_doc_id(d, i), e.window };
            uint64_t new_id = XXH64(key, sizeof key, 0);
            rc = drs_writer_add(w, new_id, data_example_source(d, i), tok, e.length);
        }
        if (rc != 0) break;
        sum->kept_units++;
        sum->kept_tokens += length;
        if (drs_writer_bytes(w) >= shard_bytes) {
            rc = drs_writer_finish(w, &done);
            w = NULL;
        }
        if (rc == 0 && sum->kept_units % 1024 == 0) {
            size_t n_shards = done.n + (w != NULL);
            progress_set_extra(&bar, "%zu shard%s", n_shards, n_shards == 1 ? "" : "s");
            progress_update(&bar, (double)sum->kept_units);
        }
    }
    if (rc == 0 && w) {
        rc = drs_writer_finish(w, &done);
        w = NULL;
    }
    if (rc == 0) {
        progress_set_extra(&bar, "%zu shard%s", done.n, done.n == 1 ? "" : "s");
        progress_update(&bar, (double)sum->kept_units);
    }
    progress_abort(&bar);   /* dr-filter's summary, or the error, replaces the bar */
    if (rc == 0 && done.n == 0 && !allow_empty) rc = dr_seterr("no %s kept: nothing to write to %s",
                                                                 docs ? "document" : "example", dir);
    if (rc != 0 && w) drs_writer_abort(w);
    if (rc != 0) dr_outset_abort(&done);   /* nothing of this run appears */
    else rc = drs_publish_numbered(&done, dir, prefix, paths, &sum->stale_removed);
    if (rc != 0) dr_remove_created_dirs(dir, made);   /* only while empty */
    dr_created_dirs_forget();
    free(made);
    free(tok);
    return rc;
}

void filter_print_summary(const DataLoader *d, const FilterDocs *docs, const uint8_t *keep_mask,
                          const FilterOptions *o, const FilterCut *cut, const FilterSummary *sum, FILE *f) {
    const char *units = docs ? "documents" : "examples";
    fprintf(f, "kept %llu of %llu %s (%.2f%%), %llu of %llu tokens (%.2f%%)\n",
            (unsigned long long)sum->kept_units, (unsigned long long)sum->units, units,
            sum->units ? 100.0 * (double)sum->kept_units / (double)sum->units : 0.0,
            (unsigned long long)sum->kept_tokens, (unsigned long long)sum->tokens,
            sum->tokens ? 100.0 * (double)sum->kept_tokens / (double)sum->tokens : 0.0);
    /* the cut, in shortest round-trip digits so that a --min-score copied from here
     * reads back as the very same double; kept: the high end, inverted the low end */
    const int inv = o->invert;
    char a[JSON_NUMBER_MAX], b[JSON_NUMBER_MAX];
    json_format_number(a, inv ? cut->highest_kept : cut->lowest_kept);
    json_format_number(b, inv ? cut->lowest_dropped : cut->highest_dropped);
    const char *kept_end = inv ? "highest kept" : "lowest kept";
    const char *dropped_end = inv ? "lowest dropped" : "highest dropped";
    if (cut->kept && cut->dropped) {
        int apart = inv ? cut->highest_kept < cut->lowest_dropped : cut->lowest_kept > cut->highest_dropped;
        fprintf(f, "score cut: %s %s, %s %s", kept_end, a, dropped_end, b);
        if (o->policy != FILTER_MIN_SCORE && apart)   /* S: the lowest kept (inverted: dropped) score */
            fprintf(f, ": %s%s%s%s %s keeps the same %s", inv ? "--invert " : "",
                    docs ? "--documents " : "", docs ? filter_doc_score_name(o->documents) : "",
                    docs ? " --min-score" : "--min-score", inv ? b : a, units);
        else if (o->policy == FILTER_TOP && !apart)
            fprintf(f, ": tied at the cut, so no --min-score keeps exactly these");
        fputc('\n', f);
    } else if (cut->kept) {
        fprintf(f, "score cut: %s %s, none dropped\n", kept_end, a);
    } else if (cut->dropped) {
        fprintf(f, "score cut: %s %s, none kept\n", dropped_end, b);
    }
    if (sum->stale_removed)
        fprintf(f, "removed %u shard%s of an earlier run with the same prefix\n",
                sum->stale_removed, sum->stale_removed == 1 ? "" : "s");
    /* Per source, in order of first appearance (source names are interned per shard,
     * so compare by name). */
    typedef struct { const char *name; uint64_t n, kept; } SourceCount;
    SourceCount *sc = NULL;
    size_t n_sc = 0, cap_sc = 0;
    /* name -> 1 + index into sc: open addressing, kept under half full, so the summary
     * is linear in the examples whatever the number of sources */
    size_t n_slots = 1024;
    uint32_t *slots = xcalloc(n_slots, sizeof *slots);
    const char *last_name = NULL;   /* consecutive examples mostly share one interned name */
    size_t last_k = 0;
    uint64_t n = docs ? docs->n : data_num_examples(d);
    for (uint64_t i = 0; i < n; i++) {
        const char *name = data_example_source(d, docs ? docs->first_example[i] : i);
        size_t k;
        if (name == last_name) {
            k = last_k;
        } else {
            size_t len = strlen(name), h = (size_t)XXH64(name, len, 0) & (n_slots - 1);
            while (slots[h] && strcmp(sc[slots[h] - 1].name, name) != 0) h = (h + 1) & (n_slots - 1);
            if (slots[h]) {
                k = slots[h] - 1;
            } else {
                if (n_sc == cap_sc) {
                    cap_sc = cap_sc ? 2 * cap_sc : 64;
                    sc = xrealloc(sc, cap_sc * sizeof *sc);
                }
                k = n_sc;
                sc[n_sc++] = (SourceCount){ name, 0, 0 };
                slots[h] = (uint32_t)(k + 1);
                if (2 * n_sc > n_slots) {   /* grow and rehash */
                    free(slots);
                    n_slots *= 2;
                    slots = xcalloc(n_slots, sizeof *slots);
                    for (size_t j = 0; j < n_sc; j++) {
                        size_t g = (size_t)XXH64(sc[j].name, strlen(sc[j].name), 0) & (n_slots - 1);
                        while (slots[g]) g = (g + 1) & (n_slots - 1);
                        slots[g] = (uint32_t)(j + 1);
                    }
                }
            }
            last_name = name;
            last_k = k;
        }
        sc[k].n++;
        sc[k].kept += keep_mask[i] != 0;
    }
    free(slots);
    fprintf(f, "%-24s %10s %10s %8s\n", "source", units, "kept", "kept%");
    for (size_t k = 0; k < n_sc; k++)
        fprintf(f, "%-24s %10llu %10llu %7.2f%%\n", sc[k].name[0] ? sc[k].name : "(none)",
                (unsigned long long)sc[k].n, (unsigned long long)sc[k].kept,
                100.0 * (double)sc[k].kept / (double)sc[k].n);
    free(sc);
}
