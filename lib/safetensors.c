/* safetensors.c — Hugging Face safetensors reader (validating, mmap) and writer
 * (deterministic, atomic). See safetensors.h for the rules checked and the layout
 * written. The reader never trusts a length or offset before checking it against the
 * file; it never returns a partially validated file.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER 100000000ull   /* Hugging Face's MAX_HEADER_SIZE */
#define ST_MAX_DIMS 8

/* ---- dtypes -------------------------------------------------------------------- */

static const struct { const char *name; size_t size; } dtypes[] = {
    [ST_F32] = {"F32", 4},  [ST_F64] = {"F64", 8},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I64] = {"I64", 8},  [ST_I32] = {"I32", 4},
    [ST_U8] = {"U8", 1},    [ST_U64] = {"U64", 8},   [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},  [ST_U16] = {"U16", 2},   [ST_U32] = {"U32", 4},
    [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof *dtypes))

const char *st_dtype_name(StDtype d) {
    CHECK((int)d >= 0 && (int)d < N_DTYPES, "bad dtype %d", (int)d);
    return dtypes[d].name;
}
size_t st_dtype_size(StDtype d) {
    CHECK((int)d >= 0 && (int)d < N_DTYPES, "bad dtype %d", (int)d);
    return dtypes[d].size;
}
static int dtype_from_name(const char *s, size_t len) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strlen(dtypes[i].name) == len && memcmp(dtypes[i].name, s, len) == 0) return i;
    return -1;
}

/* ---- reader -------------------------------------------------------------------- */

struct SafeTensors {
    char *path;
    unsigned char *map;
    size_t map_size;
    const unsigned char *data;   /* data section */
    size_t data_size;
    StTensor *tensors;           /* in offset order */
    size_t n;
    size_t *by_name;             /* indices sorted by name, for st_find */
    char **meta_keys, **meta_vals;
    size_t n_meta;
};

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int as_index(const JsonValue *v, uint64_t *out) {
    if (!v || v->type != JSON_NUMBER) return -1;
    double x = v->number;
    if (!(x >= 0 && x <= 9007199254740992.0) || x != (double)(uint64_t)x) return -1;
    *out = (uint64_t)x;
    return 0;
}

/* Stable merge sort of indices into t (qsort is neither stable nor has a context). */
typedef int (*TensorCmp)(const StTensor *a, const StTensor *b);
static int by_offset(const StTensor *a, const StTensor *b) {
    if (a->offset != b->offset) return a->offset < b->offset ? -1 : 1;
    if (a->nbytes != b->nbytes) return a->nbytes < b->nbytes ? -1 : 1;   /* empty ones first */
    return 0;
}
static int by_name(const StTensor *a, const StTensor *b) { return strcmp(a->name, b->name); }
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void sort_indices(size_t *idx, size_t n, const StTensor *t, TensorCmp cmp) {
    if (n < 2) return;
    size_t *tmp = xmalloc(n * sizeof *tmp);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = cmp(&t[idx[i]], &t[idx[j]]) <= 0 ? idx[i++] : idx[j++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, n * sizeof *idx);
    }
    free(tmp);
}

static int parse_header(SafeTensors *st, const char *hdr, size_t hlen) {
    const char *path = st->path;
    if (hlen == 0 || hdr[0] != '{')
        return dr_seterr("%s: not a safetensors file: the header does not start with '{'", path);
    JsonDoc *doc = json_parse(hdr, hlen, 0);
    if (!doc) return dr_seterr("%s: header is not valid JSON: %s", path, dr_lasterr());
    const JsonValue *root = json_root(doc);
    int rc = -1;
    st->tensors = xcalloc(root->len ? root->len : 1, sizeof *st->tensors);
    int seen_meta = 0;
    for (size_t i = 0; i < root->len; i++) {
        const char *key = root->keys[i];
        size_t klen = root->key_lens[i];
        const JsonValue *v = &root->items[i];
        if (strlen(key) != klen) {
            dr_seterr("%s: a tensor or metadata name contains a NUL character", path);
            goto out;
        }
        if (strcmp(key, "__metadata__") == 0) {
            if (seen_meta++) { dr_seterr("%s: \"__metadata__\" appears twice", path); goto out; }
            if (v->type != JSON_OBJECT) {
                dr_seterr("%s: \"__metadata__\" must be an object of strings", path);
                goto out;
            }
            st->meta_keys = xcalloc(v->len ? v->len : 1, sizeof *st->meta_keys);
            st->meta_vals = xcalloc(v->len ? v->len : 1, sizeof *st->meta_vals);
            for (size_t j = 0; j < v->len; j++) {
                const JsonValue *mv = &v->items[j];
                if (mv->type != JSON_STRING) {
                    dr_seterr("%s: metadata '%s' must be a string", path, v->keys[j]);
                    goto out;
                }
                if (strlen(v->keys[j]) != v->key_lens[j] || strlen(mv->str) != mv->len) {
                    dr_seterr("%s: metadata '%s' contains a NUL character", path, v->keys[j]);
                    goto out;
                }
                st->meta_keys[j] = xstrdup(v->keys[j]);
                st->meta_vals[j] = xstrdup(mv->str);
                st->n_meta = j + 1;
            }
            /* duplicates: sorted, not pairwise (a header of 10^6 keys is not a hang) */
            char **sorted = xmalloc((st->n_meta ? st->n_meta : 1) * sizeof *sorted);
            if (st->n_meta) memcpy(sorted, st->meta_keys, st->n_meta * sizeof *sorted);
            qsort(sorted, st->n_meta, sizeof *sorted, cmp_str);
            const char *dup = NULL;
            for (size_t j = 1; j < st->n_meta && !dup; j++)
                if (strcmp(sorted[j - 1], sorted[j]) == 0) dup = sorted[j];
            if (dup) dr_seterr("%s: metadata key '%s' appears twice", path, dup);
            free(sorted);
            if (dup) goto out;
            continue;
        }
        StTensor *t = &st->tensors[st->n];
        t->name = xstrdup(key);
        st->n++;
        if (v->type != JSON_OBJECT) {
            dr_seterr("%s: tensor '%s': expected an object {dtype, shape, data_offsets}", path, key);
            goto out;
        }
        for (size_t j = 0; j < v->len; j++) {
            const char *f = v->keys[j];
            if (strcmp(f, "dtype") && strcmp(f, "shape") && strcmp(f, "data_offsets")) {
                dr_seterr("%s: tensor '%s': unexpected field '%s'", path, key, f);
                goto out;
            }
            for (size_t k = 0; k < j; k++)
                if (strcmp(v->keys[k], f) == 0) {
                    dr_seterr("%s: tensor '%s': field '%s' appears twice", path, key, f);
                    goto out;
                }
        }
        const JsonValue *dt = json_get(v, "dtype"), *shape = json_get(v, "shape"),
                        *offs = json_get(v, "data_offsets");
        if (!dt || dt->type != JSON_STRING) {
            dr_seterr("%s: tensor '%s': missing or non-string \"dtype\"", path, key);
            goto out;
        }
        int d = dtype_from_name(dt->str, dt->len);
        if (d < 0) {
            dr_seterr("%s: tensor '%s': unsupported dtype '%s'", path, key, dt->str);
            goto out;
        }
        t->dtype = (StDtype)d;
        if (!shape || shape->type != JSON_ARRAY) {
            dr_seterr("%s: tensor '%s': missing or non-array \"shape\"", path, key);
            goto out;
        }
        if (shape->len > ST_MAX_DIMS) {
            dr_seterr("%s: tensor '%s': %zu dims, at most %d supported", path, key, shape->len, ST_MAX_DIMS);
            goto out;
        }
        t->ndim = (int)shape->len;
        uint64_t count = 1;
        int overflow = 0;
        for (int k = 0; k < t->ndim; k++) {
            uint64_t dim;
            if (as_index(&shape->items[k], &dim)) {
                dr_seterr("%s: tensor '%s': shape[%d] is not a non-negative integer", path, key, k);
                goto out;
            }
            t->shape[k] = (int64_t)dim;
            if (dim && count > UINT64_MAX / dim) overflow = 1;
            count *= dim;
        }
        uint64_t esize = dtypes[d].size;
        if (overflow || count > UINT64_MAX / esize) {
            dr_seterr("%s: tensor '%s': shape too large", path, key);
            goto out;
        }
        uint64_t begin, end;
        if (!offs || offs->type != JSON_ARRAY || offs->len != 2 || as_index(&offs->items[0], &begin) ||
            as_index(&offs->items[1], &end)) {
            dr_seterr("%s: tensor '%s': \"data_offsets\" must be [begin, end] with non-negative integers", path, key);
            goto out;
        }
        if (begin > end || end > st->data_size) {
            dr_seterr("%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of %zu bytes",
                      path, key, (unsigned long long)begin, (unsigned long long)end, st->data_size);
            goto out;
        }
        if (count * esize != end - begin) {
            dr_seterr("%s: tensor '%s': shape and dtype %s need %llu bytes, data_offsets span %llu",
                      path, key, dtypes[d].name, (unsigned long long)(count * esize),
                      (unsigned long long)(end - begin));
            goto out;
        }
        t->offset = (size_t)begin;
        t->nbytes = (size_t)(end - begin);
    }
    /* Put the tensors in offset order (ties keep header order), then check they tile. */
    st->by_name = xmalloc((st->n ? st->n : 1) * sizeof *st->by_name);
    for (size_t i = 0; i < st->n; i++) st->by_name[i] = i;
    sort_indices(st->by_name, st->n, st->tensors, by_offset);
    StTensor *ordered = xmalloc((st->n ? st->n : 1) * sizeof *ordered);
    for (size_t i = 0; i < st->n; i++) ordered[i] = st->tensors[st->by_name[i]];
    free(st->tensors);
    st->tensors = ordered;
    size_t pos = 0;
    for (size_t i = 0; i < st->n; i++) {
        const StTensor *t = &st->tensors[i];
        if (t->offset > pos) {
            dr_seterr("%s: tensor '%s': gap of %zu bytes before its data", path, t->name, t->offset - pos);
            goto out;
        }
        if (t->offset < pos) {
            dr_seterr("%s: tensor '%s': its data overlaps the previous tensor's", path, t->name);
            goto out;
        }
        pos = t->offset + t->nbytes;
    }
    if (pos != st->data_size) {
        dr_seterr("%s: %zu bytes of data after the last tensor (tensors end at %zu, the file at %zu)", path,
                  st->data_size - pos, pos, st->data_size);
        goto out;
    }
    for (size_t i = 0; i < st->n; i++) st->by_name[i] = i;
    sort_indices(st->by_name, st->n, st->tensors, by_name);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(st->tensors[st->by_name[i - 1]].name, st->tensors[st->by_name[i]].name) == 0) {
            dr_seterr("%s: tensor name '%s' appears twice", path, st->tensors[st->by_name[i]].name);
            goto out;
        }
    rc = 0;
out:
    json_free(doc);
    return rc;
}

SafeTensors *st_open(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dr_seterr("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        dr_seterr("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        dr_seterr("%s: truncated: %zu bytes, a safetensors file has at least 8", path, size);
        close(fd);
        return NULL;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (map == MAP_FAILED) {
        dr_seterr("%s: cannot map: %s", path, strerror(saved));
        return NULL;
    }
    SafeTensors *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    st->map = map;
    st->map_size = size;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st->map[i];
    if (hlen > ST_MAX_HEADER) {
        dr_seterr("%s: not a safetensors file: header length %llu exceeds the limit of %llu bytes", path,
                  (unsigned long long)hlen, ST_MAX_HEADER);
        st_close(st);
        return NULL;
    }
    if (hlen > size - 8) {
        dr_seterr("%s: truncated: header length %llu but only %zu bytes follow", path, (unsigned long long)hlen,
                  size - 8);
        st_close(st);
        return NULL;
    }
    st->data = st->map + 8 + hlen;
    st->data_size = size - 8 - (size_t)hlen;
    if (parse_header(st, (const char *)st->map + 8, (size_t)hlen)) {
        st_close(st);
        return NULL;
    }
    return st;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->map_size);
    for (size_t i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->by_name);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->path);
    free(st);
}

size_t st_count(const SafeTensors *st) { return st->n; }

const StTensor *st_tensor(const SafeTensors *st, size_t i) {
    CHECK(i < st->n, "tensor index %zu out of range (%zu)", i, st->n);
    return &st->tensors[i];
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[st->by_name[mid]].name, name);
        if (c == 0) return &st->tensors[st->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const void *st_data(const SafeTensors *st, const StTensor *t) { return st->data + t->offset; }

size_t st_metadata_count(const SafeTensors *st) { return st->n_meta; }
const char *st_metadata_at(const SafeTensors *st, size_t i, const char **value) {
    CHECK(i < st->n_meta, "metadata index %zu out of range (%zu)", i, st->n_meta);
    if (value) *value = st->meta_vals[i];
    return st->meta_keys[i];
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {   /* subnormal: normalize */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 1024));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 1023) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int st_read_real(const SafeTensors *st, const char *name, real *dst, size_t n) {
    const StTensor *t = st_find(st, name);
    if (!t) return dr_seterr("%s: tensor '%s' not found", st->path, name);
    size_t es = dtypes[t->dtype].size, count = t->nbytes / es;
    if (count != n) return dr_seterr("%s: tensor '%s': %zu elements, expected %zu", st->path, name, count, n);
    const unsigned char *src = st_data(st, t);
    switch (t->dtype) {
    case ST_F32:
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, src + 4 * i, 4);
            dst[i] = (real)f;
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double f;
            memcpy(&f, src + 8 * i, 8);
            dst[i] = (real)f;
        }
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            float f;
            memcpy(&f, &bits, 4);
            dst[i] = (real)f;
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = (real)half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    default:
        return dr_seterr("%s: tensor '%s': dtype %s is not floating point", st->path, name, dtypes[t->dtype].name);
    }
    for (size_t i = 0; i < n; i++)   /* NaN, ∞, or past the float range: never a usable model */
        if (!isfinite((double)dst[i]))
            return dr_seterr("%s: tensor '%s' holds %s at element %zu", st->path, name,
                             isnan((double)dst[i]) ? "NaN" : "an infinity", i) - 1;   /* -2 */
    return 0;
}

/* ---- writer -------------------------------------------------------------------- */

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    void *owned;           /* the copy, or NULL for st_writer_add_ref */
    size_t nbytes;
} WTensor;

struct StWriter {
    WTensor *t;
    size_t n, cap;
    char **meta_keys, **meta_vals;
    size_t n_meta, cap_meta;
};

StWriter *st_writer_new(void) { return xcalloc(1, sizeof(StWriter)); }

static WTensor *add_entry(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape) {
    CHECK((int)dtype >= 0 && (int)dtype < N_DTYPES, "bad dtype %d", (int)dtype);
    CHECK(ndim >= 0 && ndim <= ST_MAX_DIMS, "tensor '%s': %d dims", name, ndim);
    CHECK(strcmp(name, "__metadata__") != 0, "tensor name __metadata__ is reserved");
    for (size_t i = 0; i < w->n; i++) CHECK(strcmp(w->t[i].name, name) != 0, "tensor '%s' added twice", name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->t = xrealloc(w->t, w->cap * sizeof *w->t);
    }
    WTensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t count = 1;
    for (int k = 0; k < ndim; k++) {
        CHECK(shape[k] >= 0, "tensor '%s': negative dim %lld", name, (long long)shape[k]);
        t->shape[k] = shape[k];
        count *= (size_t)shape[k];
    }
    t->nbytes = count * dtypes[dtype].size;
    return t;
}

void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                   const void *data) {
    WTensor *t = add_entry(w, name, dtype, ndim, shape);
    t->owned = xmalloc(t->nbytes);
    if (t->nbytes) memcpy(t->owned, data, t->nbytes);
    t->data = t->owned;
}

void st_writer_add_ref(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                       const void *data) {
    add_entry(w, name, dtype, ndim, shape)->data = data;
}

void st_writer_add_real(StWriter *w, const char *name, int ndim, const int64_t *shape, const real *data) {
    st_writer_add(w, name, sizeof(real) == 8 ? ST_F64 : ST_F32, ndim, shape, data);
}

void st_writer_metadata(StWriter *w, const char *key, const char *value) {
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = xstrdup(value);
            return;
        }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
        w->meta_keys = xrealloc(w->meta_keys, w->cap_meta * sizeof *w->meta_keys);
        w->meta_vals = xrealloc(w->meta_vals, w->cap_meta * sizeof *w->meta_vals);
    }
    w->meta_keys[w->n_meta] = xstrdup(key);
    w->meta_vals[w->n_meta] = xstrdup(value);
    w->n_meta++;
}

int st_writer_save(StWriter *w, const char *path) {
    /* Header JSON, compact, in memory. */
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *h = open_memstream(&hdr, &hlen);
    CHECK(h, "open_memstream failed");
    fputc('{', h);
    int first = 1;
    if (w->n_meta) {
        size_t *order = xmalloc(w->n_meta * sizeof *order);
        char **keys = xmalloc(w->n_meta * sizeof *keys);
        memcpy(keys, w->meta_keys, w->n_meta * sizeof *keys);
        qsort(keys, w->n_meta, sizeof *keys, cmp_str);
        for (size_t i = 0; i < w->n_meta; i++)
            for (size_t j = 0; j < w->n_meta; j++)
                if (w->meta_keys[j] == keys[i]) order[i] = j;
        fputs("\"__metadata__\":{", h);
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) fputc(',', h);
            json_write_string(h, w->meta_keys[order[i]], strlen(w->meta_keys[order[i]]));
            fputc(':', h);
            json_write_string(h, w->meta_vals[order[i]], strlen(w->meta_vals[order[i]]));
        }
        fputc('}', h);
        first = 0;
        free(order);
        free(keys);
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const WTensor *t = &w->t[i];
        if (!first) fputc(',', h);
        first = 0;
        json_write_string(h, t->name, strlen(t->name));
        fprintf(h, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[t->dtype].name);
        for (int k = 0; k < t->ndim; k++) fprintf(h, k ? ",%lld" : "%lld", (long long)t->shape[k]);
        fprintf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    fputc('}', h);
    while (ftell(h) % 8) fputc(' ', h);
    CHECK(fclose(h) == 0, "building the safetensors header failed");

    char *tmp;
    FILE *f = dr_atomic_open(path, &tmp);
    if (!f) {
        free(hdr);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, hlen, f);
    free(hdr);
    for (size_t i = 0; i < w->n; i++)
        if (w->t[i].nbytes) fwrite(w->t[i].data, 1, w->t[i].nbytes, f);
    return dr_atomic_commit(f, tmp, path);
}

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->t);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    free(w);
}
