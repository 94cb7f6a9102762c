/* A plain C program using the C API of a model written with library=True (tests/test_c_api.py).
 * Compiled with gcc (not g++) against lib<MODEL>.so, with -DMODEL=<name> -DMODEL_HEADER='"<name>_c.h"'.
 *
 *   c_api_client WEIGHTS MAX_BATCH BATCH DIR [THREADS CALLS [shared]]
 *
 * Prints the model's description (what the query functions say) and reads the input sets
 * DIR/set<k>_input<i>.bin (k = 0, 1, ... while they exist; raw, batch x per-example elements).
 * Without THREADS: runs each set on one session and writes DIR/set<k>_output<i>.bin.
 * With THREADS: starts THREADS threads, each with its own session, each running CALLS inferences over
 * the sets in turn, and counts the outputs that differ in any bit from the set<k>_output<i>.bin of an
 * earlier single-threaded run. `shared`: the threads share one session instead, which the C API
 * forbids (the negative control of the ThreadSanitizer test).
 * Exit status: 0 ok, 1 usage or I/O error, 2 create failed, 3 infer failed, 4 outputs differ. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include MODEL_HEADER

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define API(function) CAT(MODEL, function) /* API(create) is <model>_create */

#define MAX_SETS 8
#define MAX_TENSORS 16

typedef API(session) session_t;

static int64_t batch;
static int n_sets, n_inputs, n_outputs;
static void *inputs[MAX_SETS][MAX_TENSORS];
static void *expected[MAX_SETS][MAX_TENSORS]; /* the single-threaded outputs */
static size_t input_bytes[MAX_TENSORS], output_bytes[MAX_TENSORS];
static const char *weights;
static int64_t max_batch;
static long calls;
static session_t *shared_session; /* the one session of all threads with `shared`, else NULL */

static size_t dtype_size(int dtype)
{
   switch (dtype) {
   case J2S_FLOAT32: case J2S_INT32: return 4;
   case J2S_FLOAT64: case J2S_INT64: return 8;
   case J2S_BOOL: return 1;
   default: return 0;
   }
}

/* bytes of `batch` examples of a tensor, printing its description */
static size_t describe(const char *kind, int i, const char *name, int dtype, int rank, const int64_t *shape)
{
   size_t elements = (size_t)batch;
   printf("%s %d %s dtype %d shape", kind, i, name, dtype);
   for (int d = 0; d < rank; ++d) {
      printf(" %lld", (long long)shape[d]);
      elements *= (size_t)shape[d];
   }
   printf("\n");
   return elements * dtype_size(dtype);
}

static void *read_file(const char *path, size_t bytes)
{
   FILE *f = fopen(path, "rb");
   if (!f)
      return NULL;
   void *data = malloc(bytes ? bytes : 1);
   size_t got = fread(data, 1, bytes, f);
   fclose(f);
   if (got != bytes) {
      fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, got, bytes);
      exit(1);
   }
   return data;
}

static int run(session_t *session, int set, void **outputs)
{
   const void *in[MAX_TENSORS];
   for (int i = 0; i < n_inputs; ++i)
      in[i] = inputs[set][i];
   return API(infer)(session, batch, in, outputs);
}

/* a thread with its own session: `calls` inferences over the sets in turn, compared bit for bit */
static void *worker(void *arg)
{
   long thread = (long)arg, differ = 0;
   session_t *session = shared_session ? shared_session : API(create)(weights, max_batch);
   if (!session) {
      fprintf(stderr, "thread %ld: %s\n", thread, API(last_error)());
      return (void *)-1L;
   }
   void *outputs[MAX_TENSORS];
   for (int i = 0; i < n_outputs; ++i)
      outputs[i] = malloc(output_bytes[i] ? output_bytes[i] : 1);
   for (long call = 0; call < calls; ++call) {
      int set = (int)((thread + call) % n_sets);
      if (run(session, set, outputs) != J2S_OK) {
         fprintf(stderr, "thread %ld: %s\n", thread, API(last_error)());
         differ = -1;
         break;
      }
      for (int i = 0; i < n_outputs; ++i)
         differ += memcmp(outputs[i], expected[set][i], output_bytes[i]) != 0;
   }
   printf("thread %ld: %ld calls, %ld differ\n", thread, calls, differ);
   for (int i = 0; i < n_outputs; ++i)
      free(outputs[i]);
   if (session != shared_session)
      API(destroy)(session);
   return (void *)differ;
}

static int write_file(const char *path, const void *data, size_t bytes)
{
   FILE *f = fopen(path, "wb");
   int ok = f && fwrite(data, 1, bytes, f) == bytes;
   if (f)
      fclose(f);
   if (!ok)
      fprintf(stderr, "cannot write %s\n", path);
   return ok;
}

int main(int argc, char **argv)
{
   if (argc < 5 || argc == 6 || argc > 8) {
      fprintf(stderr, "usage: %s WEIGHTS MAX_BATCH BATCH DIR [THREADS CALLS [shared]]\n", argv[0]);
      return 1;
   }
   weights = argv[1];
   max_batch = atoll(argv[2]);
   batch = atoll(argv[3]);
   const char *dir = argv[4];
   const int threads = argc >= 7 ? atoi(argv[5]) : 0;
   calls = argc >= 7 ? atol(argv[6]) : 0;
   if (threads < 0 || threads > 64)
      return 1;

   n_inputs = API(num_inputs)();
   n_outputs = API(num_outputs)();
   printf("dynamic_batch %d has_batch %d weight_file '%s'\n", API(dynamic_batch)(), API(has_batch)(),
          API(default_weight_file)());
   for (int i = 0; i < n_inputs; ++i)
      input_bytes[i] = describe("input", i, API(input_name)(i), API(input_dtype)(i), API(input_rank)(i),
                                API(input_shape)(i));
   for (int i = 0; i < n_outputs; ++i)
      output_bytes[i] = describe("output", i, API(output_name)(i), API(output_dtype)(i), API(output_rank)(i),
                                 API(output_shape)(i));

   char path[4096];
   for (n_sets = 0; n_sets < MAX_SETS; ++n_sets) {
      int complete = 1;
      for (int i = 0; i < n_inputs && complete; ++i) {
         snprintf(path, sizeof path, "%s/set%d_input%d.bin", dir, n_sets, i);
         complete = (inputs[n_sets][i] = read_file(path, input_bytes[i])) != NULL;
      }
      if (!complete)
         break;
   }
   printf("sets %d\n", n_sets);
   if (n_sets == 0) {
      fprintf(stderr, "no input files %s/set0_input*.bin\n", dir);
      return 1;
   }

   if (threads == 0) { /* one session runs every set and writes its outputs */
      session_t *session = API(create)(weights, max_batch);
      if (!session) {
         fprintf(stderr, "create failed: %s\n", API(last_error)());
         return 2;
      }
      printf("max_batch %lld\n", (long long)API(max_batch)(session));
      for (int k = 0; k < n_sets; ++k) {
         void *outputs[MAX_TENSORS];
         for (int i = 0; i < n_outputs; ++i)
            outputs[i] = malloc(output_bytes[i] ? output_bytes[i] : 1);
         if (run(session, k, outputs) != J2S_OK) {
            fprintf(stderr, "infer failed: %s\n", API(last_error)());
            return 3;
         }
         for (int i = 0; i < n_outputs; ++i) {
            snprintf(path, sizeof path, "%s/set%d_output%d.bin", dir, k, i);
            if (!write_file(path, outputs[i], output_bytes[i]))
               return 1;
            free(outputs[i]);
         }
      }
      API(destroy)(session);
      return 0;
   }

   /* threads: compared with the outputs an earlier single-threaded run wrote; nothing runs before the
    * threads start, so their first calls (and sessions) are the process's first, at the same time */
   for (int k = 0; k < n_sets; ++k)
      for (int i = 0; i < n_outputs; ++i) {
         snprintf(path, sizeof path, "%s/set%d_output%d.bin", dir, k, i);
         if (!(expected[k][i] = read_file(path, output_bytes[i]))) {
            fprintf(stderr, "no %s: run without THREADS first\n", path);
            return 1;
         }
      }
   if (argc == 8 && strcmp(argv[7], "shared") == 0 && !(shared_session = API(create)(weights, max_batch))) {
      fprintf(stderr, "create failed: %s\n", API(last_error)());
      return 2;
   }
   pthread_t ids[64];
   long failed = 0;
   for (long t = 0; t < threads; ++t)
      pthread_create(&ids[t], NULL, worker, (void *)t);
   for (long t = 0; t < threads; ++t) {
      void *differ;
      pthread_join(ids[t], &differ);
      failed += (long)differ != 0;
   }
   API(destroy)(shared_session);
   return failed ? 4 : 0;
}
