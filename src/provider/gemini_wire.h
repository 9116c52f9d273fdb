/* gemini_wire.h: the Gemini API wire format (wire-formats.md §1): the generateContent request
 * built from a job, the GenerateContentResponse parsed into a job, Google's error envelope.
 *
 * Pure functions: no I/O, no logging, no globals; the provider (provider_gemini.c) and the
 * fuzz drivers call them. Every string that comes back from the upstream is bounded,
 * truncated on a UTF-8 boundary and made valid UTF-8 before it lands in a message. */
#ifndef IG_GEMINI_WIRE_H
#define IG_GEMINI_WIRE_H

#include "base/base.h"
#include "provider/provider.h"

/* Largest request body ig_gemini_build_request makes (16 references of 7 MB are ~150 MB). */
#define IG_GEMINI_MAX_REQUEST (512u * 1024 * 1024)
/* The model's own text in an error message is cut to this many bytes. */
#define IG_GEMINI_MAX_TEXT_IN_MSG 400

/* The generateContent body for one image of the job (heap string, caller frees; *len gets its
 * length when len is not NULL):
 *   {"contents":[{"role":"user","parts":[{"text":prompt},
 *                 {"inlineData":{"mimeType":m,"data":base64}} per reference, in order]}],
 *    "generationConfig":{"responseModalities":["TEXT","IMAGE"],
 *       "temperature":t (if set), "topP":p (if set),
 *       "imageConfig":{"aspectRatio":ratio (if not ""),
 *                      "imageSize":resolution (only for models with several resolutions)}}}
 * The base64 goes straight into the output buffer in chunks: no JSON tree holds it. NULL when
 * the job has no task or the body would exceed IG_GEMINI_MAX_REQUEST. */
char *ig_gemini_build_request(const struct ig_job *job, size_t *len);

/* Parse a GenerateContentResponse (HTTP 200) into the job's outputs, which must be empty
 * (nimages 0, text NULL). Every part of every candidate is read; parts marked "thought" are
 * skipped. Sets images (inlineData or inline_data with an image/... mimeType, decoded, up to
 * IG_MAX_OUTPUTS, mime as declared, width/height 0), text (text parts joined by '\n', heap),
 * usage, model_version, response_id, err and errmsg. Returns job->err:
 *   IG_OK                  at least one image and no safety finishReason;
 *   IG_E_MODERATED         promptFeedback.blockReason without candidates, or any candidate
 *                          finished for a safety reason (images dropped, see the .c);
 *   IG_E_UPSTREAM_FAILED   no image (errmsg: the model's text, or the finishReason), or a
 *                          malformed body (bad JSON, not an object, bad base64): then no
 *                          output is kept. */
enum ig_err ig_gemini_parse_response(const char *body, size_t len, struct ig_job *job);

/* What an error answer said. */
struct ig_gemini_error {
    char msg[512];          /* "upstream 429 RESOURCE_EXHAUSTED: You exceeded ..." */
    int code;               /* error.code, else the HTTP status passed in */
    char status[48];        /* error.status ("RESOURCE_EXHAUSTED"), "" if none */
    char reason[64];        /* first ErrorInfo.reason ("API_KEY_INVALID"), "" if none */
    int64_t retry_after_ms; /* RetryInfo.retryDelay in ms (rounded up), 0 if none */
};

/* Parse Google's error envelope {"error":{"code","message","status","details":[...]}} of a
 * non-2xx answer. http_status is the answer's status, used when the body does not say.
 * Returns IG_OK when the body was such an envelope; otherwise IG_E_INVALID, and out->msg is
 * "upstream answered HTTP <http_status>" (the body, which may be an HTML page from a proxy,
 * is never copied). out is always filled. */
enum ig_err ig_gemini_parse_error(int http_status, const char *body, size_t len,
                                  struct ig_gemini_error *out);

/* A google.protobuf.Duration in JSON ("22s", "1.5s", "0.250s") in ms, rounded up; -1 when
 * it is not one. */
int64_t ig_gemini_parse_duration_ms(const char *s);

/* A Retry-After header value (delta-seconds or an HTTP-date, leading/trailing blanks allowed)
 * in ms from now_ms (wall clock, ms); 0 for a date in the past, -1 when unparseable. */
int64_t ig_gemini_parse_retry_after(const char *value, int64_t now_ms);

#endif
