/* health — deployment health checks: GET /health (admin) and, with
 * general_settings.background_health_checks, the same probes every health_check_interval
 * seconds on worker 0, whose results feed the router and answer GET /health. See health.c. */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include "http/server.h"

void health_handler(worker *w, struct evhttp_request *req, const auth_ident *id);

/* http_opts.thread_start: on worker 0, when background checks are configured, arms the timer
 * (first round at once, then health_check_interval after each round ends). */
void health_thread_start(worker *w);
/* Call from http_opts.thread_exit: on worker 0, cancels a round in flight and frees the timer,
 * the round and the cached result. A no-op on other threads. */
void health_thread_exit(void);

#endif
