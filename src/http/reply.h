/* http/reply — writing responses: JSON bodies, LiteLLM's error envelope
 * {"error":{"message","type","param","code"}} (code is a string, as openai-python expects), and
 * the status lines. Used by every handler, LLM and management alike. */
#ifndef SLUICE_HTTP_REPLY_H
#define SLUICE_HTTP_REPLY_H

#include <stddef.h>

#include <event2/http.h>

const char *http_reason(int status);
/* Sends body (copied) with content-type application/json. */
void http_reply_json(struct evhttp_request *req, int status, const char *body, size_t len);
/* Builds the envelope; param NULL → null. Returns a heap string (caller frees). */
char *http_error_body(const char *message, const char *type, const char *param, int code,
                      size_t *len);
void http_reply_error(struct evhttp_request *req, int status, const char *type,
                      const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* http_reply_json plus the request's access-log line: for asynchronous handlers, whose reply
 * comes after the dispatcher has returned. */
void http_reply_json_logged(struct evhttp_request *req, int status, const char *body, size_t len);

/* The status of the last reply sent on this thread (0 = none since the reset); the dispatcher
 * uses it for the access log of synchronous handlers. */
void http_last_status_reset(void);
int http_last_status(void);

#endif
