/* safetensors.h — reader and writer of the safetensors format (8-byte little-endian
 * header length, JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
 * {str: str}}, then raw little-endian tensor bytes), as Hugging Face defines it.
 * The reader validates everything before returning: header length within the file,
 * well-formed JSON, known dtypes, offsets in range, contiguous and non-overlapping,
 * byte size = product(shape) × dtype size. Writers are atomic (temp + rename).
 */
#ifndef DR_SAFETENSORS_H
#define DR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "real.h"

typedef enum { ST_F32, ST_F64, ST_F16, ST_BF16, ST_I64, ST_I32, ST_U8, ST_U64 } StDtype;

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
/* Copies tensor `name` into dst (n elements), converting F32/F64 to real. Fails if the
 * tensor is missing or its element count differs from n. */
int st_read_real(const SafeTensors *st, const char *name, real *dst, size_t n);

typedef struct StWriter StWriter;
StWriter *st_writer_new(void);
/* The data is copied. Tensors are written in the order added. */
void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim,
                   const int64_t *shape, const void *data);
/* Adds real data stored as F32 (float build) or F64 (double build). */
void st_writer_add_real(StWriter *w, const char *name, int ndim, const int64_t *shape,
                        const real *data);
void st_writer_metadata(StWriter *w, const char *key, const char *value);
int st_writer_save(StWriter *w, const char *path);   /* atomic */
void st_writer_free(StWriter *w);

#endif
