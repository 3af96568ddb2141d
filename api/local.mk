# api: route table, error format, handlers.
libbitdistill_a_SOURCES += api/api.h api/error.c api/router.c api/routes.c api/health.c \
	api/keys.c api/infer.c api/infer.h api/models.c
