# kernels/cuda: the trainer's GPU backend (prefix krn_cuda_), built only when configure found
# nvcc (--with-cuda; AM_CONDITIONAL HAVE_CUDA). The .cu files go through $(NVCC) by explicit
# rules into libkrn_cuda.a, linked after libbitdistill.a with the CUDA runtime, cuBLAS and cublasLt.
# Targets: sm_90 machine code (H100/H200) plus compute_90 PTX for newer GPUs.
# train/cuda_model.c (the GPU model, plain C on kcuda.h) replaces train/cuda_stub.c.

KRN_CUDA_SRCS = kernels/cuda/ops.cu kernels/cuda/flash.cu kernels/cuda/head.cu kernels/cuda/nccl.cu
EXTRA_DIST += $(KRN_CUDA_SRCS) kernels/cuda/kcuda.h kernels/cuda/reduce.cuh kernels/cuda/async.cuh docs/cuda.md tools/bench_cuda_torch.py \
    tools/bench_hf_bitdistill.py tools/cuda_same_ratio.py

if HAVE_CUDA
NVCC_ARCH = -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCC_FLAGS = -std=c++17 -O3 -g -lineinfo $(NVCC_ARCH) -I$(top_srcdir) -I$(top_builddir) \
	-Xcompiler -Wall,-Wextra,-Werror,-fPIC
noinst_LIBRARIES += libkrn_cuda.a
libkrn_cuda_a_SOURCES =
libkrn_cuda_a_LIBADD = kernels/cuda/ops.$(OBJEXT) kernels/cuda/flash.$(OBJEXT) \
	kernels/cuda/head.$(OBJEXT) kernels/cuda/nccl.$(OBJEXT)
EXTRA_libkrn_cuda_a_DEPENDENCIES = $(libkrn_cuda_a_LIBADD)
kernels/cuda/ops.$(OBJEXT): $(srcdir)/kernels/cuda/ops.cu $(srcdir)/kernels/cuda/kcuda.h \
	$(srcdir)/kernels/cuda/reduce.cuh $(srcdir)/kernels/cuda/async.cuh
	@$(MKDIR_P) kernels/cuda
	$(AM_V_GEN)$(NVCC) $(NVCC_FLAGS) -c -o $@ $(srcdir)/kernels/cuda/ops.cu
kernels/cuda/flash.$(OBJEXT): $(srcdir)/kernels/cuda/flash.cu $(srcdir)/kernels/cuda/async.cuh
	@$(MKDIR_P) kernels/cuda
	$(AM_V_GEN)$(NVCC) $(NVCC_FLAGS) -c -o $@ $(srcdir)/kernels/cuda/flash.cu
kernels/cuda/head.$(OBJEXT): $(srcdir)/kernels/cuda/head.cu $(srcdir)/kernels/cuda/reduce.cuh
	@$(MKDIR_P) kernels/cuda
	$(AM_V_GEN)$(NVCC) $(NVCC_FLAGS) -c -o $@ $(srcdir)/kernels/cuda/head.cu
# NCCL (data parallel) only where its header is installed beside CUDA, else a stub that says
# so; libnccl.so.2 itself is opened at run time (dlopen) by the first multi-GPU job
KRN_NCCL_H = $(wildcard $(CUDA_DIR)/include/nccl.h)
kernels/cuda/nccl.$(OBJEXT): $(srcdir)/kernels/cuda/nccl.cu $(srcdir)/kernels/cuda/kcuda.h
	@$(MKDIR_P) kernels/cuda
	$(AM_V_GEN)$(NVCC) $(NVCC_FLAGS) $(if $(KRN_NCCL_H),-DKRN_HAVE_NCCL,) -c -o $@ \
	  $(srcdir)/kernels/cuda/nccl.cu
CLEANFILES += $(libkrn_cuda_a_LIBADD)
BD_SIMD_LIBS += libkrn_cuda.a -L$(CUDA_DIR)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
AM_LDFLAGS += -Wl,-rpath,$(CUDA_DIR)/lib64
libbitdistill_a_SOURCES += train/backend.h train/cuda_model.c kernels/cuda/kcuda.h
else
libbitdistill_a_SOURCES += train/backend.h train/cuda_stub.c
endif
EXTRA_DIST += train/cuda_model.c train/cuda_stub.c

# every GPU op against its CPU twin (SKIP without a GPU)
if HAVE_CUDA
check_PROGRAMS += tests/test-cuda-ops
TESTS += tests/test-cuda-ops
tests_test_cuda_ops_LDADD = $(BD_ALL_LIBS)
endif

# one BitDistill step and 3 AdamW steps, GPU vs CPU (SKIP without a GPU or without CUDA)
check_PROGRAMS += tests/test-cuda-step
TESTS += tests/test-cuda-step
tests_test_cuda_step_LDADD = $(BD_ALL_LIBS)

# tokens/s and MFU of the GPU step on a real-shaped model (docs/cuda.md); not run by make check
if HAVE_CUDA
noinst_PROGRAMS += bench-cuda-train
bench_cuda_train_SOURCES = train/cuda_bench.c
bench_cuda_train_LDADD = $(BD_ALL_LIBS)
endif
EXTRA_DIST += train/cuda_bench.c tools/qwen3-0.6b-config.json tools/cuda_device_run.sh
