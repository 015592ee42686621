/* cat.c — dr-cat: documents, or the examples a scores file ranks first, printed as
 * text, JSON lines or token ids (formats in cat.h). Reads through the verified shard
 * reader only; never prints a token it did not verify, never mixes tokenizers. */
#include "cat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "scores.h"
#include "shard.h"
#include "tokenizer.h"

void cat_options_default(CatOptions *o) { *o = (CatOptions){.seq_len = 1024, .head = UINT64_MAX}; }

/* ---- the tokenizer ---------------------------------------------------------------- */

static int needs_text(const CatOptions *o) { return !o->ids && !o->list; }

/* The tokenizer the shards name (or the override), checked against their fingerprint. */
static Tokenizer *open_tokenizer(const CatOptions *o, const ShardList *shards, uint64_t fingerprint) {
    Tokenizer *t;
    if (o->tokenizer_kind) {
        t = tokenizer_load(o->tokenizer_kind, o->vocab_dir);
    } else {
        DrsReader *r = drs_open(shards->items[0].path);
        if (!r) return NULL;
        if (!drs_tokenizer_spec(r)[0]) {
            dr_seterr("%s: the shard names no tokenizer: give --tokenizer, or use --ids", drs_path(r));
            drs_close(r);
            return NULL;
        }
        t = tokenizer_from_spec(drs_tokenizer_spec(r));
        if (!t)   /* a spec from another machine (bpe:/home/…): say which shard, and the way out */
            dr_seterr("%s: cannot load the tokenizer it names, \"%s\": %s (give --tokenizer and "
                      "--vocab-dir, or use --ids)", drs_path(r), drs_tokenizer_spec(r), dr_lasterr());
        drs_close(r);
    }
    if (t && tokenizer_check_fingerprint(t, fingerprint, shards->items[0].path) != 0) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

/* ---- one record --------------------------------------------------------------------- */

typedef struct {              /* the example being printed, with scores */
    const char *example_id;
    double score;
    uint32_t window;
} ScoreInfo;

static void write_ids_array(FILE *out, const uint32_t *ids, size_t n) {
    char buf[16];
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, i ? ",%u" : "%u", ids[i]);
        fwrite(buf, 1, (size_t)len, out);
    }
    fputc(']', out);
}

static void write_jsonl(FILE *out, const CatOptions *o, uint64_t id, const char *source,
                        const uint32_t *ids, size_t n, const ByteBuf *text, const ScoreInfo *si) {
    fputc('{', out);
    if (si) {
        fprintf(out, "\"example\": \"%s\", \"score\": %.9g, \"window\": %u, ", si->example_id, si->score,
                si->window);
    }
    fprintf(out, "\"id\": \"%016llx\", \"source\": ", (unsigned long long)id);
    json_write_string(out, source, strlen(source));
    fprintf(out, ", \"n_tokens\": %zu, ", n);
    if (o->ids) {
        fputs("\"ids\": ", out);
        write_ids_array(out, ids, n);
    } else {
        fputs("\"text\": ", out);
        json_write_string(out, text->bytes, text->n);
    }
    fputs("}\n", out);
}

static int print_record(FILE *out, const CatOptions *o, const Tokenizer *tok, ByteBuf *text, uint64_t id,
                        const char *source, const uint32_t *ids, size_t n, const ScoreInfo *si) {
    if (tok) {
        text->n = 0;
        if (tokenizer_decode(tok, ids, n, text) < 0) return -1;
    }
    if (o->jsonl) {
        write_jsonl(out, o, id, source, ids, n, text, si);
    } else if (o->ids) {
        write_ids_array(out, ids, n);
        fputc('\n', out);
    } else {
        if (si) fprintf(out, "### %s score %.9g source %s\n", si->example_id, si->score, source);
        if (text->n) fwrite(text->bytes, 1, text->n, out);
        if (!o->raw) fputc('\n', out);
    }
    return 0;
}

/* ---- documents in shard order --------------------------------------------------------- */

/* The error for a --source that no document has (a misspelt name prints nothing, which
 * reads as success): names up to 8 of the sources the inputs have. */
static int no_such_source(const ShardList *shards, const char *want) {
    char seen[8][64];
    int n = 0, more = 0;
    for (size_t k = 0; k < shards->n && !more; k++) {
        DrsReader *r = drs_open(shards->items[k].path);
        if (!r) return -1;
        for (uint64_t i = 0; i < drs_num_docs(r) && !more; i++) {
            const char *src = drs_doc_source(r, i);
            int j = 0;
            while (j < n && strncmp(seen[j], src, sizeof seen[j] - 1) != 0) j++;
            if (j < n) continue;
            if (n == 8) { more = 1; break; }
            snprintf(seen[n++], sizeof seen[0], "%s", src);
        }
        drs_close(r);
    }
    char list[8 * 70] = "";
    for (int j = 0; j < n; j++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", j ? ", " : "", seen[j]);
    return dr_seterr("--source '%s': no document of the inputs has that source (they have %s%s)", want,
                     list, more ? ", …" : "");
}

static int cat_documents(const ShardList *shards, const CatOptions *o, const Tokenizer *tok, FILE *out) {
    uint32_t *buf = NULL;
    size_t cap = 0;
    ByteBuf text = {0};
    uint64_t printed = 0;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < shards->n && printed < o->head; k++) {
        DrsReader *r = drs_open(shards->items[k].path);
        if (!r) { rc = -1; break; }
        for (uint64_t i = 0; i < drs_num_docs(r) && printed < o->head; i++) {
            const DrsDoc *d = drs_doc(r, i);
            const char *source = drs_doc_source(r, i);
            if (o->source && strcmp(o->source, source) != 0) continue;
            printed++;
            if (ferror(out)) break;   /* a full disk: stop now (cat_run says why), not after the corpus */
            if (o->list) {
                fprintf(out, "%016llx\t%s\t%u\n", (unsigned long long)d->id, source, d->length);
                continue;
            }
            if (d->length > cap) buf = xrealloc(buf, (cap = d->length) * sizeof *buf);
            if (drs_read_doc(r, i, buf) < 0 ||
                print_record(out, o, tok, &text, d->id, source, buf, d->length, NULL) < 0) {
                rc = -1;
                break;
            }
        }
        drs_close(r);
    }
    free(buf);
    bytebuf_free(&text);
    if (rc == 0 && o->source && printed == 0 && o->head > 0) rc = no_such_source(shards, o->source);
    return rc;
}

/* ---- examples ranked by score ----------------------------------------------------------- */

typedef struct {          /* where a document lives */
    uint32_t shard;
    uint64_t doc;
} DocRef;

/* Document id -> first place it occurs (ids are hashes: open addressing on them). */
typedef struct {
    uint64_t *keys;
    DocRef *refs;
    uint8_t *used;
    size_t mask;
} DocMap;

static void docmap_put(DocMap *m, uint64_t id, DocRef ref) {
    size_t h = (size_t)(id ^ (id >> 31)) & m->mask;
    while (m->used[h]) {
        if (m->keys[h] == id) return;
        h = (h + 1) & m->mask;
    }
    m->used[h] = 1;
    m->keys[h] = id;
    m->refs[h] = ref;
}

static const DocRef *docmap_get(const DocMap *m, uint64_t id) {
    size_t h = (size_t)(id ^ (id >> 31)) & m->mask;
    while (m->used[h]) {
        if (m->keys[h] == id) return &m->refs[h];
        h = (h + 1) & m->mask;
    }
    return NULL;
}

static void docmap_free(DocMap *m) {
    free(m->keys);
    free(m->refs);
    free(m->used);
}

/* Indexes the documents of the shards (of o->source only, when given), through readers
 * opened here and kept (readers[k]): the windows are then checked and printed from the
 * same indexes, never from a file replaced in between. */
static int build_docmap(const ShardList *shards, const CatOptions *o, DocMap *m, DrsReader **readers) {
    uint64_t total = 0;
    for (size_t k = 0; k < shards->n; k++) {
        if (!(readers[k] = drs_open(shards->items[k].path))) return -1;
        total += drs_num_docs(readers[k]);
    }
    size_t cap = 16;
    while (cap < 2 * total) cap *= 2;
    *m = (DocMap){xcalloc(cap, sizeof *m->keys), xcalloc(cap, sizeof *m->refs), xcalloc(cap, 1), cap - 1};
    for (size_t k = 0; k < shards->n; k++) {
        DrsReader *r = readers[k];
        for (uint64_t i = 0; i < drs_num_docs(r); i++)
            if (!o->source || strcmp(o->source, drs_doc_source(r, i)) == 0)
                docmap_put(m, drs_doc(r, i)->id, (DocRef){(uint32_t)k, i});
    }
    return 0;
}

/* qsort has no context argument: rank indices carry their score. */
typedef struct {
    double score;
    size_t line_index;
    uint64_t doc_id;
    uint32_t window;
} Ranked;

/* Equal scores in example-id order (doc id, window), so that the order of the file's
 * lines (sort, join) never changes what is printed; then line order (one id twice). */
static int cmp_ties(const Ranked *x, const Ranked *y) {
    if (x->doc_id != y->doc_id) return x->doc_id < y->doc_id ? -1 : 1;
    if (x->window != y->window) return x->window < y->window ? -1 : 1;
    return (x->line_index > y->line_index) - (x->line_index < y->line_index);
}
static int cmp_desc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return cmp_ties(x, y);
}
static int cmp_asc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return cmp_ties(x, y);
}

/* The window [*start, *end) of example e of the scores in its document, checked against
 * the document's length (from the shard's index: nothing is decoded). */
static int example_window(const Scores *sc, size_t e, const DocRef *ref, DrsReader **readers,
                          const CatOptions *o, uint64_t *start, uint64_t *end) {
    const DrsDoc *d = drs_doc(readers[ref->shard], ref->doc);   /* the reader that indexed it */
    uint64_t L = (uint64_t)o->seq_len;
    *start = (uint64_t)sc->window[e] * L;
    *end = *start + L + 1 < d->length ? *start + L + 1 : d->length;
    uint64_t expected = *start < d->length ? *end - *start : 0;
    if (*start >= d->length || expected != sc->n_tokens[e]) {
        uint32_t made = data_window_seq_len(d->length, sc->window[e], sc->n_tokens[e]);
        char which[64] = "the seq_len the scores were made with";
        if (made) snprintf(which, sizeof which, "--seq-len %u, as the scores were made", made);
        return dr_seterr("%s:%zu: example %016llx:%u has %u tokens, but window %u of this document "
                         "(%u tokens) has %llu with --seq-len %d: use %s", sc->path, e + 2,
                         (unsigned long long)sc->doc_id[e], sc->window[e], sc->n_tokens[e],
                         sc->window[e], d->length, (unsigned long long)expected, o->seq_len, which);
    }
    return 0;
}

/* Prints example e of the scores (its window of its document; example_window passed). */
static int print_example(const Scores *sc, size_t e, const DocRef *ref, DrsReader **readers,
                         const CatOptions *o, const Tokenizer *tok,
                         ByteBuf *text, uint32_t **buf, size_t *cap, FILE *out) {
    uint64_t start, end;
    if (example_window(sc, e, ref, readers, o, &start, &end) < 0) return -1;
    DrsReader *r = readers[ref->shard];
    const DrsDoc *d = drs_doc(r, ref->doc);
    if (d->length > *cap) *buf = xrealloc(*buf, (*cap = d->length) * sizeof **buf);
    if (drs_read_doc(r, ref->doc, *buf) < 0) return -1;
    char example_id[40];
    snprintf(example_id, sizeof example_id, "%016llx:%u", (unsigned long long)sc->doc_id[e], sc->window[e]);
    ScoreInfo si = {example_id, sc->score[e], sc->window[e]};
    return print_record(out, o, tok, text, d->id, drs_doc_source(r, ref->doc), *buf + start,
                        (size_t)(end - start), &si);
}

static int cat_scored(const ShardList *shards, const CatOptions *o, const Tokenizer *tok, FILE *out) {
    Scores sc;
    if (scores_read(o->scores_path, &sc) < 0) return -1;
    DocMap map = {0};
    DrsReader **readers = xcalloc(shards->n ? shards->n : 1, sizeof *readers);
    if (build_docmap(shards, o, &map, readers) < 0) {
        for (size_t k = 0; k < shards->n; k++) drs_close(readers[k]);
        free(readers);
        docmap_free(&map);
        scores_free(&sc);
        return -1;
    }
    Ranked *ranked = xmalloc((sc.n + 1) * sizeof *ranked);
    size_t n = 0;
    for (size_t e = 0; e < sc.n; e++)
        if (docmap_get(&map, sc.doc_id[e])) ranked[n++] = (Ranked){sc.score[e], e, sc.doc_id[e], sc.window[e]};
    int rc = 0;
    if (n == 0 && sc.n > 0)
        rc = dr_seterr("%s: none of its %zu examples is a document of the inputs%s", o->scores_path, sc.n,
                       o->source ? " (of that --source)" : "");
    qsort(ranked, n, sizeof *ranked, o->bottom ? cmp_asc : cmp_desc);
    if (o->head < n) n = (size_t)o->head;
    uint32_t *buf = NULL;
    size_t cap = 0;
    ByteBuf text = {0};
    /* every window is checked before the first is printed: a scores file made with another
     * seq_len gets its one error line and no output */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t e = ranked[i].line_index;
        uint64_t start, end;
        rc = example_window(&sc, e, docmap_get(&map, sc.doc_id[e]), readers, o, &start, &end);
    }
    for (size_t i = 0; rc == 0 && i < n && !ferror(out); i++) {
        size_t e = ranked[i].line_index;
        rc = print_example(&sc, e, docmap_get(&map, sc.doc_id[e]), readers, o, tok, &text, &buf, &cap, out);
    }
    for (size_t k = 0; k < shards->n; k++) drs_close(readers[k]);
    free(readers);
    free(buf);
    bytebuf_free(&text);
    free(ranked);
    docmap_free(&map);
    scores_free(&sc);
    return rc;
}

int cat_run(const ShardList *shards, const CatOptions *o, FILE *out) {
    if (shards->n == 0) return dr_seterr("no input shards");
    if (o->seq_len < 1) return dr_seterr("--seq-len %d: must be at least 1", o->seq_len);
    if (o->list && o->scores_path) return dr_seterr("--list does not go with --scores");
    uint64_t fingerprint;
    if (shardlist_check_tokenizer(shards, &fingerprint, NULL) < 0) return -1;
    Tokenizer *tok = NULL;
    if (needs_text(o) && !(tok = open_tokenizer(o, shards, fingerprint))) return -1;
    int rc = o->scores_path ? cat_scored(shards, o, tok, out) : cat_documents(shards, o, tok, out);
    if (tok) tokenizer_free(tok);
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = dr_seterr("cannot write the output: %s", strerror(errno));
    return rc;
}
