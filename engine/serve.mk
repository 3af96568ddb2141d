# engine serving: model registry (hot-swap), multi-sequence batch pass, sampler, scheduler.
libbitdistill_a_SOURCES += engine/registry.c engine/registry.h engine/batch.c engine/batch.h \
	engine/sampler.c engine/sampler.h engine/sched.c engine/sched.h
