/* split.c — dr-split: plan from the shard indexes, then one streaming pass that reads
 * each kept document once and writes it once (rules in split.h).
 *
 * Pass 1 reads only the indexes: document ids, sources, each shard's content key. It
 * fixes the canonical order, the val eligibility of each id, the duplicates and the
 * split of every document. Pass 2 walks the shards in canonical order, decoding each
 * block once, and appends the documents to the three output writers (whose blocks are
 * compressed on worker threads). Must never produce output that depends on the order
 * of the inputs, on timing or on the thread count.
 */
#include "split.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "shard.h"

enum { PLAN_DROP = 0xff };

static const char *const SPLIT_NAMES[SPLIT_COUNT] = {"train_a", "val", "train_b"};

const char *split_name(int split) { return split >= 0 && split < SPLIT_COUNT ? SPLIT_NAMES[split] : "?"; }

void split_options_default(SplitOptions *o) {
    *o = (SplitOptions){.val = 0.1, .train_b = 0.0, .seed = 0, .shard_bytes = 64ull << 20,
                        .zstd_level = DRS_ZSTD_LEVEL, .background = 1};
}

void split_set_val_sources(SplitOptions *o, const char *comma_list) {
    char *copy = xstrdup(comma_list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        o->val_sources = xrealloc(o->val_sources, (size_t)(o->n_val_sources + 1) * sizeof *o->val_sources);
        o->val_sources[o->n_val_sources++] = xstrdup(tok);
    }
    free(copy);
}

void split_options_free(SplitOptions *o) {
    for (int i = 0; i < o->n_val_sources; i++) free(o->val_sources[i]);
    free(o->val_sources);
    o->val_sources = NULL;
    o->n_val_sources = 0;
}

int split_bucket(uint64_t doc_id, uint64_t seed, double val, double train_b, int eligible) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(doc_id >> (8 * i));
    double u = (double)(XXH64(b, sizeof b, seed) >> 11) * 0x1.0p-53;
    if (u < val) {
        if (eligible) return SPLIT_VAL;
        /* not allowed in val: share its slot between train_b and train_a */
        return val < 1.0 && u / val < train_b / (1.0 - val) ? SPLIT_TRAIN_B : SPLIT_TRAIN_A;
    }
    return u < val + train_b ? SPLIT_TRAIN_B : SPLIT_TRAIN_A;
}

/* ---- pass 1: the plan ----------------------------------------------------------- */

typedef struct {
    const char *path;
    uint64_t key;        /* drs_content_key */
    uint64_t n_docs;
    uint64_t *ids;       /* [n_docs] */
    uint8_t *plan;       /* [n_docs]: first "of a val source", then the split or PLAN_DROP */
} InputShard;

typedef struct {
    InputShard *shards;
    size_t n;
    uint32_t vocab;
    uint64_t fingerprint;
    char *spec;
} Plan;

static int source_is_val(const SplitOptions *o, const char *source) {
    for (int i = 0; i < o->n_val_sources; i++)
        if (strcmp(o->val_sources[i], source) == 0) return 1;
    return 0;
}

static int scan_shard(Plan *p, InputShard *s, const SplitOptions *o, SplitStats *st) {
    DrsReader *r = drs_open(s->path);
    if (!r) return -1;
    if (p->spec == NULL) {
        p->vocab = drs_vocab_size(r);
        p->fingerprint = drs_fingerprint(r);
        p->spec = xstrdup(drs_tokenizer_spec(r));
    } else if (drs_fingerprint(r) != p->fingerprint || drs_vocab_size(r) != p->vocab) {
        dr_seterr("%s and %s were made by different tokenizers (\"%s\", fingerprint %016llx vs "
                  "\"%s\", fingerprint %016llx): refusing to mix them", p->shards[0].path, s->path,
                  p->spec, (unsigned long long)p->fingerprint, drs_tokenizer_spec(r),
                  (unsigned long long)drs_fingerprint(r));
        drs_close(r);
        return -1;
    }
    s->key = drs_content_key(r);
    s->n_docs = drs_num_docs(r);
    s->ids = xmalloc(s->n_docs * sizeof *s->ids + 1);
    s->plan = xmalloc(s->n_docs + 1);
    uint8_t *val_source = xcalloc(drs_num_sources(r) + 1, 1);
    for (uint32_t k = 0; k < drs_num_sources(r); k++)
        val_source[k] = o->n_val_sources == 0 || source_is_val(o, drs_source_name(r, k));
    for (uint64_t i = 0; i < s->n_docs; i++) {
        const DrsDoc *d = drs_doc(r, i);
        s->ids[i] = d->id;
        s->plan[i] = val_source[d->source];
    }
    free(val_source);
    st->in_docs += s->n_docs;
    st->in_tokens += drs_num_tokens(r);
    drs_close(r);
    return 0;
}

static int cmp_shard(const void *a, const void *b) {
    const InputShard *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted ids of the kept documents that are not of a val source: those ids can
 * not be in val (a copy of them would be in val under another source). */
static uint64_t *ids_outside_val_sources(const Plan *p, size_t *n_out) {
    size_t n = 0;
    for (size_t k = 0; k < p->n; k++)
        for (uint64_t i = 0; i < p->shards[k].n_docs; i++) n += p->shards[k].plan[i] == 0;
    uint64_t *ids = xmalloc(n * sizeof *ids + 1);
    n = 0;
    for (size_t k = 0; k < p->n; k++)
        for (uint64_t i = 0; i < p->shards[k].n_docs; i++)
            if (p->shards[k].plan[i] == 0) ids[n++] = p->shards[k].ids[i];
    qsort(ids, n, sizeof *ids, cmp_u64);
    *n_out = n;
    return ids;
}

/* Set of 64-bit ids: open addressing; 0 is kept in a flag of its own. */
typedef struct {
    uint64_t *slots;
    size_t mask;
    int has_zero;
} IdSet;

static void idset_init(IdSet *s, uint64_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    s->slots = xcalloc(cap, sizeof *s->slots);
    s->mask = cap - 1;
    s->has_zero = 0;
}

/* Adds id; returns 1 if it was already there. */
static int idset_add(IdSet *s, uint64_t id) {
    if (id == 0) {
        int had = s->has_zero;
        s->has_zero = 1;
        return had;
    }
    size_t h = (size_t)(id ^ (id >> 29)) & s->mask;   /* ids are hashes already */
    while (s->slots[h]) {
        if (s->slots[h] == id) return 1;
        h = (h + 1) & s->mask;
    }
    s->slots[h] = id;
    return 0;
}

/* Marks every copy of an id but the first (in canonical order) PLAN_DROP. */
static void drop_duplicates(Plan *p, uint64_t n_docs) {
    IdSet seen;
    idset_init(&seen, n_docs);
    for (size_t k = 0; k < p->n; k++)
        for (uint64_t i = 0; i < p->shards[k].n_docs; i++)
            if (idset_add(&seen, p->shards[k].ids[i])) p->shards[k].plan[i] = PLAN_DROP;
    free(seen.slots);
}

static void assign_splits(Plan *p, const SplitOptions *o, SplitStats *st) {
    if (o->dedup) drop_duplicates(p, st->in_docs);
    size_t n_barred = 0;
    uint64_t *barred = o->n_val_sources ? ids_outside_val_sources(p, &n_barred) : NULL;
    for (size_t k = 0; k < p->n; k++) {
        InputShard *s = &p->shards[k];
        for (uint64_t i = 0; i < s->n_docs; i++) {
            if (s->plan[i] == PLAN_DROP) continue;
            uint64_t id = s->ids[i];
            int eligible = !barred || !bsearch(&id, barred, n_barred, sizeof id, cmp_u64);
            s->plan[i] = (uint8_t)split_bucket(id, o->seed, o->val, o->train_b, eligible);
        }
    }
    free(barred);
}

static void plan_free(Plan *p) {
    for (size_t k = 0; k < p->n; k++) {
        free(p->shards[k].ids);
        free(p->shards[k].plan);
    }
    free(p->shards);
    free(p->spec);
}

/* ---- pass 2: streaming the documents into the outputs ---------------------------- */

typedef struct {
    DrsWriter *w;
    int n_shards;          /* shards opened so far */
} Output;

static char *shard_path(const char *dir, int split, int index) {
    size_t n = strlen(dir) + 64;
    char *p = xmalloc(n);
    size_t len = strlen(dir);
    const char *sep = len > 0 && dir[len - 1] == '/' ? "" : "/";   /* "-o out/" */
    snprintf(p, n, "%s%s%s/%s-%05d.drs", dir, sep, SPLIT_NAMES[split], SPLIT_NAMES[split], index);
    return p;
}

static int make_dir(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        return dr_seterr("%s: exists and is not a directory", path);
    }
    return dr_seterr("%s: cannot create directory: %s", path, strerror(errno));
}

static char *split_dir(const char *root, int split) {
    size_t n = strlen(root) + 16;
    char *dir = xmalloc(n);
    snprintf(dir, n, "%s/%s", root, SPLIT_NAMES[split]);
    return dir;
}

/* Opens the next shard of a split in the staging directory. */
static int output_open(Output *out, int split, const Plan *p, const SplitOptions *o, const char *staging) {
    if (out->n_shards == 0) {
        char *dir = split_dir(staging, split);
        int rc = make_dir(dir);
        free(dir);
        if (rc < 0) return -1;
    }
    char *path = shard_path(staging, split, out->n_shards);
    out->w = drs_writer_open(path, p->vocab, p->fingerprint, p->spec);
    free(path);
    if (!out->w) return -1;
    drs_writer_set_level(out->w, o->zstd_level);
    out->n_shards++;
    return drs_writer_set_background(out->w, o->background);
}

static int output_close(Output *out) {
    if (!out->w) return 0;
    int rc = drs_writer_close(out->w);
    out->w = NULL;
    return rc;
}

/* Copies document i of r, starting a new shard when the current one is full (counted
 * in uncompressed token bytes, so the cut does not depend on compression timing). */
static int output_copy(Output *out, int split, const Plan *p, const SplitOptions *o, const char *staging,
                       DrsReader *r, uint64_t i) {
    uint64_t width = p->vocab <= 65535 ? 2 : 4;
    if (out->w && drs_writer_docs(out->w) > 0 && drs_writer_tokens(out->w) * width >= o->shard_bytes)
        if (output_close(out) < 0) return -1;
    if (!out->w && output_open(out, split, p, o, staging) < 0) return -1;
    return drs_writer_copy_doc(out->w, r, i);
}

static int stream_shard(const InputShard *s, const Plan *p, const SplitOptions *o, const char *staging,
                        Output *outs, SplitStats *st) {
    DrsReader *r = drs_open(s->path);
    if (!r) return -1;
    int rc = 0;
    if (drs_content_key(r) != s->key || drs_num_docs(r) != s->n_docs)
        rc = dr_seterr("%s: changed while dr-split was reading it", s->path);
    for (uint64_t i = 0; rc == 0 && i < s->n_docs; i++) {
        uint32_t length = drs_doc(r, i)->length;
        int split = s->plan[i];
        if (split == PLAN_DROP) {
            st->dup_docs++;
            st->dup_tokens += length;
            continue;
        }
        rc = output_copy(&outs[split], split, p, o, staging, r, i);
        st->docs[split]++;
        st->tokens[split] += length;
    }
    drs_close(r);
    return rc;
}

/* Removes DIR/<split>/<split>-NNNNN.drs with NNNNN >= keep: leftovers of an earlier run. */
static void remove_stale(const char *out_dir, int split, int keep) {
    char *dir = split_dir(out_dir, split);
    DIR *d = opendir(dir);
    free(dir);
    if (!d) return;
    struct dirent *e;
    size_t prefix = strlen(SPLIT_NAMES[split]);
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name, *digits = name + prefix + 1;
        if (strlen(name) != prefix + 10 || strncmp(name, SPLIT_NAMES[split], prefix) != 0 ||
            name[prefix] != '-' || strcmp(digits + 5, ".drs") != 0 || strspn(digits, "0123456789") != 5)
            continue;
        int index = atoi(digits);
        if (index < keep) continue;
        char *path = shard_path(out_dir, split, index);
        unlink(path);
        free(path);
    }
    closedir(d);
}

/* ---- the manifest ---------------------------------------------------------------- */

static void write_manifest(FILE *f, const char *prefix, const Plan *p, const SplitOptions *o,
                           const SplitStats *st) {
    fprintf(f, "# dr-split manifest\n");
    fprintf(f, "# hash: xxh64(doc id as 8 little-endian bytes, seed); u = (hash >> 11) / 2^53\n");
    fprintf(f, "# seed: %llu\n", (unsigned long long)o->seed);
    fprintf(f, "# fractions: val %.17g train_b %.17g train_a %.17g "
               "(val if u < val, train_b if u < val + train_b, else train_a)\n",
            o->val, o->train_b, 1.0 - o->val - o->train_b);
    fprintf(f, "# val-sources: ");
    if (o->n_val_sources == 0) fprintf(f, "all\n");
    for (int i = 0; i < o->n_val_sources; i++)
        fprintf(f, "%s%s", o->val_sources[i], i + 1 < o->n_val_sources ? "," : "\n");
    fprintf(f, "# dedup: %s (%llu duplicate documents, %llu tokens dropped)\n", o->dedup ? "yes" : "no",
            (unsigned long long)st->dup_docs, (unsigned long long)st->dup_tokens);
    fprintf(f, "# tokenizer: %s fingerprint %016llx vocab %u\n", p->spec[0] ? p->spec : "(none)",
            (unsigned long long)p->fingerprint, p->vocab);
    fprintf(f, "# input: %llu shards, %llu documents, %llu tokens\n", (unsigned long long)st->in_shards,
            (unsigned long long)st->in_docs, (unsigned long long)st->in_tokens);
    for (int s = 0; s < SPLIT_COUNT; s++)
        fprintf(f, "# %s: %llu documents, %llu tokens, %llu shards\n", SPLIT_NAMES[s],
                (unsigned long long)st->docs[s], (unsigned long long)st->tokens[s],
                (unsigned long long)st->shards[s]);
    for (int s = 0; s < SPLIT_COUNT; s++)
        for (uint64_t k = 0; k < st->shards[s]; k++) {
            char *path = shard_path(prefix, s, (int)k);
            fprintf(f, "%s\t%s\n", SPLIT_NAMES[s], prefix[0] ? path : path + 1);
            free(path);
        }
}

static int write_manifest_file(const Plan *p, const SplitOptions *o, const SplitStats *st) {
    size_t n = strlen(o->out_dir) + 16;
    char *path = xmalloc(n), *tmp;
    snprintf(path, n, "%s/manifest.tsv", o->out_dir);
    FILE *f = dr_atomic_open(path, &tmp);
    int rc = -1;
    if (f) {
        write_manifest(f, "", p, o, st);
        rc = dr_atomic_commit(f, tmp, path);
    }
    free(path);
    return rc;
}

/* ---- the run ---------------------------------------------------------------------- */

static int check_options(const SplitOptions *o) {
    if (!(o->val >= 0 && o->val <= 1)) return dr_seterr("--val %g: must be in [0, 1]", o->val);
    if (!(o->train_b >= 0 && o->train_b <= 1)) return dr_seterr("--train-b %g: must be in [0, 1]", o->train_b);
    if (o->val + o->train_b > 1) return dr_seterr("--val %g + --train-b %g exceed 1", o->val, o->train_b);
    if (o->shard_bytes == 0) return dr_seterr("--shard-size must be positive");
    if (!o->out_dir || !o->out_dir[0]) return dr_seterr("no output directory (-o DIR)");
    return 0;
}

/* Moves the finished shards from staging into DIR/<split>/ and removes what is left of
 * an earlier run there. */
static int publish(const char *staging, const Output *outs, const char *out_dir) {
    for (int s = 0; s < SPLIT_COUNT; s++) {
        if (outs[s].n_shards > 0) {
            char *dir = split_dir(out_dir, s);
            int rc = make_dir(dir);
            free(dir);
            if (rc < 0) return -1;
        }
        for (int k = 0; k < outs[s].n_shards; k++) {
            char *from = shard_path(staging, s, k), *to = shard_path(out_dir, s, k);
            int rc = rename(from, to) == 0 ? 0 : dr_seterr("%s: cannot move into place: %s", to, strerror(errno));
            free(from);
            free(to);
            if (rc < 0) return -1;
        }
        remove_stale(out_dir, s, outs[s].n_shards);
    }
    return 0;
}

/* Removes the staging directory and whatever is left in it. */
static void discard_staging(const char *staging, const Output *outs) {
    for (int s = 0; s < SPLIT_COUNT; s++) {
        for (int k = 0; k < outs[s].n_shards; k++) {
            char *path = shard_path(staging, s, k);
            unlink(path);
            free(path);
        }
        char *dir = split_dir(staging, s);
        rmdir(dir);
        free(dir);
    }
    rmdir(staging);
}

/* Writes every split into DIR/.dr-split.<pid>/ first, so a failed run leaves the
 * output of an earlier run as it was; publishes when all shards are complete. */
static int stream_all(const Plan *p, const SplitOptions *o, SplitStats *st) {
    Output outs[SPLIT_COUNT] = {{0}};
    size_t n = strlen(o->out_dir) + 32;
    char *staging = xmalloc(n);
    snprintf(staging, n, "%s/.dr-split.%ld", o->out_dir, (long)getpid());
    int rc = make_dir(o->out_dir);
    if (rc == 0) rc = make_dir(staging);
    for (size_t k = 0; rc == 0 && k < p->n; k++) rc = stream_shard(&p->shards[k], p, o, staging, outs, st);
    for (int s = 0; s < SPLIT_COUNT; s++) {
        if (rc == 0) rc = output_close(&outs[s]);
        else if (outs[s].w) drs_writer_abort(outs[s].w);
        outs[s].w = NULL;
        st->shards[s] = (uint64_t)outs[s].n_shards;
    }
    if (rc == 0) rc = publish(staging, outs, o->out_dir);
    discard_staging(staging, outs);
    free(staging);
    return rc;
}

int split_run(const ShardList *inputs, const SplitOptions *o, FILE *manifest_out, SplitStats *st) {
    *st = (SplitStats){0};
    if (check_options(o) < 0) return -1;
    if (inputs->n == 0) return dr_seterr("no input shards");
    Plan p = {0};
    p.n = inputs->n;
    p.shards = xcalloc(p.n, sizeof *p.shards);
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < p.n; k++) {
        p.shards[k].path = inputs->items[k].path;
        rc = scan_shard(&p, &p.shards[k], o, st);
    }
    st->in_shards = p.n;
    if (rc == 0 && st->in_docs == 0) rc = dr_seterr("the %zu input shards hold no documents", p.n);
    if (rc == 0) {
        qsort(p.shards, p.n, sizeof *p.shards, cmp_shard);
        assign_splits(&p, o, st);
        rc = stream_all(&p, o, st);
    }
    if (rc == 0) rc = write_manifest_file(&p, o, st);
    if (rc == 0 && manifest_out) {
        write_manifest(manifest_out, o->out_dir, &p, o, st);
        if (fflush(manifest_out) != 0 || ferror(manifest_out))
            rc = dr_seterr("cannot write the manifest: %s", strerror(errno));
    }
    plan_free(&p);
    return rc;
}
