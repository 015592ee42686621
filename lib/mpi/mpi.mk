# lib/mpi/mpi.mk — MPI for the distribution layer (lib/dist.c, DESIGN §6), included by
# the top Makefile right after MPICC is detected. Safe to include whether or not mpicc
# exists: without it (or with `make MPI=0`) lib/dist.c builds as its single-process stub
# and every tool runs as one process, exactly as before.
#
# What it does when mpicc is found:
#   - lib/mpi/dist_mpi.c alone is compiled with -DDR_HAVE_MPI and MPI's include flags
#     (`mpicc --showme:compile`, Open MPI; `mpicc -compile_info`, MPICH);
#   - every link gets MPI's libraries (`--showme:link` / `-link_info`) under --as-needed:
#     only the programs that call dist_init (dr-train, dr-meta) pull dist_mpi.o out of
#     libdr.a, so only they load libmpi (the others start ~60 ms faster without it);
#   - $(BUILD)/dist.flags records dist_mpi.c's MPI flags, so switching MPI on or off
#     (installing Open MPI, MPI=0) rebuilds dist_mpi.o instead of linking a stale one.
# DR_MPI is "yes" or "no" (for the build summary).

MPI ?= 1

DR_MPI       := no
DIST_CFLAGS  :=
ifneq ($(and $(MPICC),$(filter-out 0 no,$(MPI))),)
  MPI_SHOW_C := $(shell $(MPICC) --showme:compile 2>/dev/null || $(MPICC) -compile_info 2>/dev/null)
  MPI_SHOW_L := $(shell $(MPICC) --showme:link 2>/dev/null || $(MPICC) -link_info 2>/dev/null)
  MPI_LIBS   := $(filter -L% -l% -Wl% -pthread,$(MPI_SHOW_L))
  ifneq ($(filter -lmpi%,$(MPI_LIBS)),)
    DR_MPI      := yes
    DIST_CFLAGS := -DDR_HAVE_MPI $(filter -I% -D% -pthread,$(MPI_SHOW_C))
    LDLIBS      += -Wl,--push-state,--as-needed $(MPI_LIBS) -Wl,--pop-state
  else
    $(warning lib/mpi/mpi.mk: $(MPICC) gives no MPI library to link: building without MPI)
  endif
endif

DIST_FLAGS_STAMP := $(BUILD)/dist.flags
$(shell mkdir -p $(BUILD) && { [ -f $(DIST_FLAGS_STAMP) ] && \
        [ "$$(cat $(DIST_FLAGS_STAMP))" = "$(DIST_CFLAGS)" ] || \
        printf '%s\n' "$(DIST_CFLAGS)" > $(DIST_FLAGS_STAMP); })

$(BUILD)/lib/mpi/dist_mpi.o: CFLAGS += $(DIST_CFLAGS)
$(BUILD)/lib/mpi/dist_mpi.o: $(DIST_FLAGS_STAMP)
