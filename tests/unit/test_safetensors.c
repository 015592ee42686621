/* test_safetensors.c — safetensors writer/reader: round trip of every dtype, a file
 * written byte for byte as Hugging Face's serializer writes it, deterministic output,
 * and refusal (never a crash) of every truncation, appended bytes, a list of header
 * corruptions and random header damage. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"
#include "test.h"

static char dir[64];

static char *tpath(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    fwrite(p, 1, n, f);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*n + 1);
    CHECK(fread(p, 1, *n, f) == *n, "short read");
    fclose(f);
    return p;
}

/* A file from a header string and a data section: 8-byte LE length, header, data. */
static void write_st(const char *path, const char *hdr, const void *data, size_t dlen) {
    size_t hlen = strlen(hdr);
    unsigned char *buf = malloc(8 + hlen + dlen + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, hdr, hlen);
    if (dlen) memcpy(buf + 8 + hlen, data, dlen);
    write_bytes(path, buf, 8 + hlen + dlen);
    free(buf);
}

static uint16_t float_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16);
}

static void test_round_trip(void) {
    StWriter *w = st_writer_new();
    float f32[6] = {1.5f, -2.25f, 3e-8f, 1e30f, 0.0f, -0.0f};
    double f64[3] = {0.1, -1e300, 4.9e-324};
    int64_t i64 = -1234567890123LL;
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    uint16_t bf16[2] = {float_to_bf16(1.0f), float_to_bf16(-3.5f)};
    uint16_t f16[4] = {0x3C00 /* 1 */, 0xC000 /* -2 */, 0x0001 /* 2^-24 */, 0x7BFF /* 65504 */};
    int32_t i32[1] = {-7};
    st_writer_add(w, "transformer.wte.weight", ST_F32, 2, (int64_t[]){2, 3}, f32);
    st_writer_add(w, "f64", ST_F64, 1, (int64_t[]){3}, f64);
    st_writer_add(w, "scalar", ST_I64, 0, NULL, &i64);
    st_writer_add(w, "empty", ST_F32, 2, (int64_t[]){0, 4}, NULL);
    st_writer_add_ref(w, "bytes", ST_U8, 1, (int64_t[]){5}, u8);
    st_writer_add(w, "bf16", ST_BF16, 1, (int64_t[]){2}, bf16);
    st_writer_add(w, "f16", ST_F16, 1, (int64_t[]){4}, f16);
    st_writer_add(w, "i32 \"quoted\" é", ST_I32, 3, (int64_t[]){1, 1, 1}, i32);
    real rv[4] = {1, 2, 3, 4};
    st_writer_add_real(w, "real", 2, (int64_t[]){2, 2}, rv);
    st_writer_metadata(w, "config", "{\"lm\": {\"d_model\": 512}}\n\ttab");
    st_writer_metadata(w, "format", "pt");
    st_writer_metadata(w, "format", "dr");   /* replaces */
    TEST_CHECK(st_writer_save(w, tpath("rt.safetensors")) == 0, "save: %s", dr_lasterr());
    st_writer_free(w);

    /* No temp file left behind. */
    DIR *d = opendir(dir);
    int leftovers = 0;
    for (struct dirent *e; (e = readdir(d));) leftovers += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    TEST_CHECK(leftovers == 0, "no temp files left");

    size_t n;
    unsigned char *bytes = read_bytes(tpath("rt.safetensors"), &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i];
    TEST_CHECK(hlen % 8 == 0, "header padded to a multiple of 8 (%llu)", (unsigned long long)hlen);
    free(bytes);

    SafeTensors *st = st_open(tpath("rt.safetensors"));
    TEST_CHECK(st != NULL, "open: %s", dr_lasterr());
    if (!st) return;
    TEST_CHECK(st_count(st) == 9, "9 tensors (%zu)", st_count(st));
    const char *order[] = {"transformer.wte.weight", "f64", "scalar", "empty", "bytes", "bf16", "f16",
                           "i32 \"quoted\" é", "real"};
    for (size_t i = 0; i < 9 && i < st_count(st); i++)
        TEST_CHECK(strcmp(st_tensor(st, i)->name, order[i]) == 0, "file order %zu: %s", i, st_tensor(st, i)->name);
    const StTensor *t = st_find(st, "transformer.wte.weight");
    TEST_CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nbytes == 24,
               "wte info");
    TEST_CHECK(t && memcmp(st_data(st, t), f32, 24) == 0, "wte bytes");
    t = st_find(st, "scalar");
    TEST_CHECK(t && t->ndim == 0 && t->nbytes == 8 && memcmp(st_data(st, t), &i64, 8) == 0, "scalar");
    t = st_find(st, "empty");
    TEST_CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0, "empty tensor");
    t = st_find(st, "bytes");
    TEST_CHECK(t && memcmp(st_data(st, t), u8, 5) == 0, "u8");
    t = st_find(st, "i32 \"quoted\" é");
    TEST_CHECK(t && t->ndim == 3 && memcmp(st_data(st, t), i32, 4) == 0, "escaped name");
    TEST_CHECK(st_find(st, "missing") == NULL, "missing tensor");
    TEST_CHECK(st_metadata(st, "format") && strcmp(st_metadata(st, "format"), "dr") == 0, "metadata replaced");
    TEST_CHECK(st_metadata(st, "config") && strcmp(st_metadata(st, "config"), "{\"lm\": {\"d_model\": 512}}\n\ttab") == 0,
               "metadata with escapes");
    TEST_CHECK(st_metadata(st, "nope") == NULL, "absent metadata");
    TEST_CHECK(st_metadata_count(st) == 2, "2 metadata entries");
    const char *mv;
    TEST_CHECK(strcmp(st_metadata_at(st, 0, &mv), "config") == 0, "metadata sorted by key");

    real out[6];
    TEST_CHECK(st_read_real(st, "transformer.wte.weight", out, 6) == 0, "read_real f32");
    for (int i = 0; i < 6; i++) TEST_CHECK(out[i] == (real)f32[i], "f32 value %d", i);
    if (sizeof(real) == sizeof(double)) {
        TEST_CHECK(st_read_real(st, "f64", out, 3) == 0, "read_real f64");
        for (int i = 0; i < 3; i++) TEST_CHECK(out[i] == (real)f64[i], "f64 value %d", i);
    } else {   /* -1e300 is past the float range: an infinity as a real, refused */
        TEST_CHECK(st_read_real(st, "f64", out, 3) == -2 && strstr(dr_lasterr(), "'f64' holds an infinity at element 1"),
                   "read_real f64 past the float range: %s", dr_lasterr());
        TEST_CHECK(out[0] == (real)f64[0] && out[2] == (real)f64[2], "f64 values in range");
    }
    TEST_CHECK(st_read_real(st, "bf16", out, 2) == 0 && out[0] == 1 && out[1] == -3.5, "bf16 values");
    TEST_CHECK(st_read_real(st, "f16", out, 4) == 0 && out[0] == 1 && out[1] == -2 &&
                   out[2] == (real)ldexp(1, -24) && out[3] == 65504,
               "f16 values");
    TEST_CHECK(st_read_real(st, "real", out, 4) == 0 && out[3] == 4, "real values");
    TEST_CHECK(st_read_real(st, "f64", out, 4) == -1 && strstr(dr_lasterr(), "3 elements, expected 4"),
               "count mismatch: %s", dr_lasterr());
    TEST_CHECK(st_read_real(st, "bytes", out, 5) == -1 && strstr(dr_lasterr(), "not floating point"),
               "integer dtype refused: %s", dr_lasterr());
    TEST_CHECK(st_read_real(st, "nope", out, 1) == -1 && strstr(dr_lasterr(), "'nope' not found"),
               "missing: %s", dr_lasterr());
    TEST_CHECK(strstr(dr_lasterr(), tpath("rt.safetensors")) != NULL, "message names the file");
    st_close(st);
}

/* Bytes exactly as huggingface/safetensors' serialize() writes
 * {"a": F32 [1.0, 2.0], "b": I64 scalar 7} with metadata {"format": "pt"}: metadata
 * first, tensors by descending dtype then name (b before a), compact JSON padded with
 * spaces to a multiple of 8 (138 -> 144 = 0x90 bytes). */
/* st_read_real refuses a NaN, an infinity, or an F64 past the float range (in float
 * builds), with -2 and the tensor and element named: every caller reads weights or state. */
static void test_nonfinite(void) {
    const float fa[3] = {1, NAN, 2}, fb[2] = {-INFINITY, 0};
    const double big[2] = {0.5, 1e300};
    StWriter *w = st_writer_new();
    st_writer_add(w, "nan", ST_F32, 1, (int64_t[]){3}, fa);
    st_writer_add(w, "inf", ST_F32, 1, (int64_t[]){2}, fb);
    st_writer_add(w, "big", ST_F64, 1, (int64_t[]){2}, big);
    TEST_CHECK(st_writer_save(w, tpath("nonfinite.safetensors")) == 0, "save: %s", dr_lasterr());
    st_writer_free(w);
    SafeTensors *st = st_open(tpath("nonfinite.safetensors"));
    TEST_CHECK(st != NULL, "open: %s", dr_lasterr());
    if (!st) return;
    real out[3];
    TEST_CHECK(st_read_real(st, "nan", out, 3) == -2 && strstr(dr_lasterr(), "tensor 'nan' holds NaN at element 1"),
               "NaN refused: %s", dr_lasterr());
    TEST_CHECK(st_read_real(st, "inf", out, 2) == -2 && strstr(dr_lasterr(), "holds an infinity at element 0"),
               "infinity refused: %s", dr_lasterr());
    TEST_CHECK(st_read_real(st, "big", out, 2) == (sizeof(real) == sizeof(float) ? -2 : 0),
               "an F64 past the float range: refused exactly in float builds (%s)", dr_lasterr());
    st_close(st);
}

static void test_hf_bytes(void) {
    static const unsigned char expected[] =
        "\x90\x00\x00\x00\x00\x00\x00\x00"
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}      "
        "\x07\x00\x00\x00\x00\x00\x00\x00"
        "\x00\x00\x80\x3f\x00\x00\x00\x40";
    size_t expected_len = sizeof expected - 1;
    TEST_CHECK(expected_len == 8 + 144 + 16, "expected length %zu", expected_len);

    StWriter *w = st_writer_new();
    int64_t seven = 7;
    float a[2] = {1.0f, 2.0f};
    st_writer_metadata(w, "format", "pt");
    st_writer_add(w, "b", ST_I64, 0, NULL, &seven);
    st_writer_add(w, "a", ST_F32, 1, (int64_t[]){2}, a);
    TEST_CHECK(st_writer_save(w, tpath("hf.safetensors")) == 0, "save: %s", dr_lasterr());
    st_writer_free(w);
    size_t n;
    unsigned char *got = read_bytes(tpath("hf.safetensors"), &n);
    TEST_CHECK(n == expected_len && memcmp(got, expected, n) == 0, "byte-for-byte Hugging Face layout");
    free(got);

    /* And the reader accepts the hand-written bytes, with tensors in offset order. */
    write_bytes(tpath("hf2.safetensors"), expected, expected_len);
    SafeTensors *st = st_open(tpath("hf2.safetensors"));
    TEST_CHECK(st != NULL, "open hand-written: %s", dr_lasterr());
    if (st) {
        TEST_CHECK(st_count(st) == 2 && strcmp(st_tensor(st, 0)->name, "b") == 0, "offset order");
        real v[2];
        TEST_CHECK(st_read_real(st, "a", v, 2) == 0 && v[0] == 1 && v[1] == 2, "values of a");
        st_close(st);
    }

    /* Header keys in any order (older writers sorted by name) are read the same. */
    const char *hdr = "{\"a\":{\"data_offsets\":[8,16],\"shape\":[2],\"dtype\":\"F32\"},"
                      "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}";
    write_st(tpath("ord.safetensors"), hdr, expected + 8 + 144, 16);
    st = st_open(tpath("ord.safetensors"));
    TEST_CHECK(st && st_count(st) == 2 && strcmp(st_tensor(st, 0)->name, "b") == 0, "unsorted header: %s",
               st ? "" : dr_lasterr());
    st_close(st);

    /* An empty file "{}" is valid. */
    write_st(tpath("empty.safetensors"), "{}      ", NULL, 0);
    st = st_open(tpath("empty.safetensors"));
    TEST_CHECK(st && st_count(st) == 0, "empty safetensors: %s", st ? "" : dr_lasterr());
    st_close(st);
}

static void test_deterministic(void) {
    float x[3] = {1, 2, 3};
    for (int k = 0; k < 2; k++) {
        StWriter *w = st_writer_new();
        if (k == 0) {
            st_writer_metadata(w, "b", "2");
            st_writer_metadata(w, "a", "1");
        } else {
            st_writer_metadata(w, "a", "1");
            st_writer_metadata(w, "b", "2");
        }
        st_writer_add(w, "x", ST_F32, 1, (int64_t[]){3}, x);
        TEST_CHECK(st_writer_save(w, tpath(k ? "det1.safetensors" : "det0.safetensors")) == 0, "save");
        st_writer_free(w);
    }
    size_t n0, n1;
    unsigned char *b0 = read_bytes(tpath("det0.safetensors"), &n0), *b1 = read_bytes(tpath("det1.safetensors"), &n1);
    TEST_CHECK(n0 == n1 && memcmp(b0, b1, n0) == 0, "same bytes regardless of metadata order");
    free(b0);
    free(b1);
    /* Saving into a missing directory fails cleanly. */
    StWriter *w = st_writer_new();
    TEST_CHECK(st_writer_save(w, "/nonexistent-dir/x.safetensors") == -1, "save into missing dir fails");
    TEST_CHECK(strstr(dr_lasterr(), "/nonexistent-dir/x.safetensors") != NULL, "message: %s", dr_lasterr());
    st_writer_free(w);
}

static void test_truncations(void) {
    size_t n;
    unsigned char *b = read_bytes(tpath("rt.safetensors"), &n);
    int refused = 0;
    for (size_t len = 0; len < n; len++) {
        write_bytes(tpath("trunc.safetensors"), b, len);
        SafeTensors *st = st_open(tpath("trunc.safetensors"));
        if (!st) {
            refused++;
            TEST_CHECK(strncmp(dr_lasterr(), tpath("trunc.safetensors"), strlen(tpath("trunc.safetensors"))) == 0,
                       "message starts with the path: %s", dr_lasterr());
        }
        st_close(st);
    }
    TEST_CHECK(refused == (int)n, "every truncation refused (%d of %zu)", refused, n);
    /* One byte appended. */
    b = realloc(b, n + 1);
    b[n] = 0;
    write_bytes(tpath("long.safetensors"), b, n + 1);
    SafeTensors *st = st_open(tpath("long.safetensors"));
    TEST_CHECK(!st && strstr(dr_lasterr(), "after the last tensor"), "appended byte refused: %s", dr_lasterr());
    st_close(st);
    free(b);
}

static void expect_refused(const char *hdr, size_t dlen, const char *needle) {
    unsigned char data[64] = {0};
    CHECK(dlen <= sizeof data, "test data too long");
    write_st(tpath("bad.safetensors"), hdr, data, dlen);
    SafeTensors *st = st_open(tpath("bad.safetensors"));
    TEST_CHECK(st == NULL, "refuse header %s", hdr);
    if (st) {
        st_close(st);
        return;
    }
    TEST_CHECK(strstr(dr_lasterr(), needle) != NULL, "header %s: message '%s' lacks '%s'", hdr, dr_lasterr(), needle);
    TEST_CHECK(strstr(dr_lasterr(), "bad.safetensors: ") != NULL, "message names the file: %s", dr_lasterr());
}

#define T(body) "{\"t\":{" body "}}"
static void test_corruptions(void) {
    const char *ok = T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]");
    write_st(tpath("ok.safetensors"), ok, "\0\0\0\0\0\0\0\0", 8);
    SafeTensors *st = st_open(tpath("ok.safetensors"));
    TEST_CHECK(st != NULL, "baseline accepted: %s", dr_lasterr());
    st_close(st);

    expect_refused(" {}", 0, "does not start with '{'");
    expect_refused("[]", 0, "does not start with '{'");
    expect_refused("{", 0, "not valid JSON");
    expect_refused("{\"t\":1,}", 0, "not valid JSON");
    expect_refused("{\"t\xff\":{}}", 0, "not valid JSON");
    expect_refused("{} x", 0, "not valid JSON");
    expect_refused(T("\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "unsupported dtype 'F33'");
    expect_refused(T("\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]"), 8, "dtype");
    expect_refused(T("\"shape\":[2],\"data_offsets\":[0,8]"), 8, "missing or non-string \"dtype\"");
    expect_refused(T("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), 8, "\"shape\"");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2]"), 8, "data_offsets");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]"), 8, "shape[0]");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]"), 8, "shape[0]");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]"), 8, "shape[0]");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"), 8, "\"shape\"");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]"), 8, "9 dims");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]"), 8,
                   "shape too large");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]"), 8, "[begin, end]");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]"), 8, "[begin, end]");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]"), 8, "outside the data section");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]"), 8, "outside the data section");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]"), 8, "[begin, end]");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 8, "need 12 bytes, data_offsets span 8");
    expect_refused(T("\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "need 16 bytes");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1"), 8, "unexpected field 'extra'");
    expect_refused(T("\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "appears twice");
    expect_refused("{\"t\":[1]}", 8, "expected an object");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]"), 8, "gap of 4 bytes");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"), 8, "4 bytes of data after the last tensor");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   8, "overlaps");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   8, "tensor name 'a' appears twice");
    expect_refused("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "NUL");
    expect_refused("{\"__metadata__\":{\"k\":1}}", 0, "metadata 'k' must be a string");
    expect_refused("{\"__metadata__\":[]}", 0, "must be an object of strings");
    expect_refused("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "metadata key 'k' appears twice");
    expect_refused("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "appears twice");
    expect_refused(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 12, "4 bytes of data after");

    /* Header length fields: beyond the file, beyond the 100 MB limit, huge. */
    unsigned char raw[16] = {0};
    for (int k = 0; k < 3; k++) {
        uint64_t len = k == 0 ? 9 : k == 1 ? 100000001ull : UINT64_MAX;
        for (int i = 0; i < 8; i++) raw[i] = (unsigned char)(len >> (8 * i));
        memcpy(raw + 8, "{}      ", 8);
        write_bytes(tpath("len.safetensors"), raw, 16);
        st = st_open(tpath("len.safetensors"));
        TEST_CHECK(!st, "header length %llu refused", (unsigned long long)len);
        TEST_CHECK(strstr(dr_lasterr(), k == 0 ? "truncated" : "exceeds the limit"), "message: %s", dr_lasterr());
        st_close(st);
    }
    st = st_open(tpath("does-not-exist.safetensors"));
    TEST_CHECK(!st && strstr(dr_lasterr(), "cannot open"), "missing file: %s", dr_lasterr());
    st = st_open(dir);
    TEST_CHECK(!st && strstr(dr_lasterr(), "not a regular file"), "directory: %s", dr_lasterr());

    /* Random damage to the header of a valid file: refused or accepted, never a crash,
     * and whatever is accepted stays within the file. */
    size_t n;
    unsigned char *b = read_bytes(tpath("rt.safetensors"), &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    unsigned char *c = malloc(n);
    uint64_t x = 42;
    int accepted = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(c, b, n);
        for (int e = 0; e < 1 + it % 4; e++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            c[(x >> 33) % (8 + hlen)] = (unsigned char)(x >> 21);
        }
        write_bytes(tpath("fuzz.safetensors"), c, n);
        st = st_open(tpath("fuzz.safetensors"));
        if (st) {
            accepted++;
            for (size_t i = 0; i < st_count(st); i++) {
                const StTensor *t = st_tensor(st, i);
                TEST_CHECK(t->offset + t->nbytes <= n, "accepted tensor within the file");
            }
        }
        st_close(st);
    }
    printf("safetensors: %d of 3000 damaged headers still valid (e.g. a changed name)\n", accepted);
    free(c);
    free(b);
}

static void cleanup(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') unlink(tpath(e->d_name));
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dr-test-st-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp failed");
    test_round_trip();
    test_hf_bytes();
    test_nonfinite();
    test_deterministic();
    test_truncations();
    test_corruptions();
    cleanup();
    return test_finish("test_safetensors");
}
