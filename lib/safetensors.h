/* safetensors.h — reader and writer of the safetensors format (8-byte little-endian
 * header length, JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
 * {str: str}}, then raw little-endian tensor bytes), as Hugging Face defines it.
 * The reader validates everything before returning: header length within the file,
 * well-formed JSON, known dtypes, offsets in range, contiguous and non-overlapping,
 * byte size = product(shape) × dtype size. Writers are atomic (temp + rename).
 *
 * Reader (mapped read-only with mmap; nothing is trusted before it is checked):
 *  - header length ≤ 100,000,000 bytes (Hugging Face's limit) and within the file;
 *    the header starts with '{' and is strict UTF-8 JSON (trailing spaces allowed);
 *  - every entry is {"dtype", "shape", "data_offsets"} (other fields are refused),
 *    shape has at most 8 non-negative integer dims ([] = a scalar), names are unique
 *    and contain no NUL; "__metadata__" maps strings to strings;
 *  - the tensors, ordered by offset, tile the data section exactly from 0 to its end:
 *    no gap, no overlap, nothing left over (as Hugging Face requires).
 * Errors: NULL with dr_seterr("PATH: what is wrong").
 * "File order" (st_tensor) is the order of data offsets. st_data points into the
 * mapping and may be unaligned for files from other writers: copy with memcpy or use
 * st_read_real.
 *
 * Writer: the header is compact JSON in Hugging Face's layout ("__metadata__" first,
 * keys sorted; then tensors in the order added, each {"dtype","shape","data_offsets"}),
 * padded with spaces to a multiple of 8 bytes; data follows in the same order.
 * Same inputs give the same bytes.
 */
#ifndef DR_SAFETENSORS_H
#define DR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "real.h"

typedef enum {
    ST_F32, ST_F64, ST_F16, ST_BF16, ST_I64, ST_I32, ST_U8, ST_U64,
    ST_I8, ST_I16, ST_U16, ST_U32, ST_BOOL
} StDtype;

const char *st_dtype_name(StDtype d);   /* "F32", "BF16", … */
size_t st_dtype_size(StDtype d);        /* bytes per element */

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[8];
    size_t offset, nbytes;   /* within the data section */
} StTensor;

typedef struct SafeTensors SafeTensors;

SafeTensors *st_open(const char *path);     /* NULL + dr_seterr */
void st_close(SafeTensors *st);
size_t st_count(const SafeTensors *st);
const StTensor *st_tensor(const SafeTensors *st, size_t i);   /* in file order */
const StTensor *st_find(const SafeTensors *st, const char *name);
const void *st_data(const SafeTensors *st, const StTensor *t);
const char *st_metadata(const SafeTensors *st, const char *key);   /* NULL if absent */
/* Metadata entries in header order: returns the i-th key, its value in *value. */
size_t st_metadata_count(const SafeTensors *st);
const char *st_metadata_at(const SafeTensors *st, size_t i, const char **value);
/* Copies tensor `name` into dst (n elements), converting F32/F64 (and F16/BF16) to
 * real. Fails (-1 + dr_seterr "PATH: tensor 'name': …") if the tensor is missing, is
 * not floating point, or its element count differs from n; -2 + dr_seterr ("PATH:
 * tensor 'name' holds NaN at element i") if a value is NaN or infinite as a real (an
 * F64 past the float range included): every caller reads model weights or optimizer
 * state, which such a value would turn into NaN losses and scores. */
int st_read_real(const SafeTensors *st, const char *name, real *dst, size_t n);

typedef struct StWriter StWriter;
StWriter *st_writer_new(void);
/* The data is copied. Tensors are written in the order added. A repeated name, more
 * than 8 dims or a negative dim is a programming error (CHECK). */
void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim,
                   const int64_t *shape, const void *data);
/* The same without the copy: data must stay valid and unchanged until st_writer_save
 * (for big checkpoints: a 124M-parameter model need not be held twice). */
void st_writer_add_ref(StWriter *w, const char *name, StDtype dtype, int ndim,
                       const int64_t *shape, const void *data);
/* Adds real data stored as F32 (float build) or F64 (double build). */
void st_writer_add_real(StWriter *w, const char *name, int ndim, const int64_t *shape,
                        const real *data);
/* Sets a metadata entry (a repeated key replaces the value). */
void st_writer_metadata(StWriter *w, const char *key, const char *value);
int st_writer_save(StWriter *w, const char *path);   /* atomic */
void st_writer_free(StWriter *w);

#endif
