/* config.h: every setting of `imagegate serve`, one table row each (redis static_configs[],
 * nginx ngx_command_t): name, type, bounds, default, help, and where it lands in struct
 * ig_config. Sources in increasing precedence: defaults, the config file (a JSON object with
 * the same names), IMAGEGATE_<NAME> environment variables (dashes become underscores), and
 * --<name> flags. Values are checked against their bounds when loaded. */
#ifndef IG_CONFIG_H
#define IG_CONFIG_H

#include <stdio.h>

#include "base/base.h"

struct ig_config {
    char listen[128];
    char data_dir[512];
    char public_url[512];
    char config_file[512];
    char catalog_file[512];
    char log_level[16];
    int http_threads;
    int cpu_threads;
    int64_t max_body_bytes;
    int64_t max_header_bytes;
    int max_connections;
    int conn_timeout_s;
    int max_inflight;
    int rate_rpm, rate_burst, max_tasks_per_key;
    int idempotency_ttl_s, idempotency_wait_ms;
    int task_timeout_s;
    int lease_s;
    int max_attempts;
    int grace_s;
    int64_t reapi_expiry_s;
    int sweep_interval_s;
    int offline_latency_ms;
    double offline_failure_rate;
    int64_t ref_max_bytes;
    int64_t ref_max_pixels;
    int fetch_connect_timeout_ms;
    int fetch_timeout_ms;
    int fetch_max_redirects;
    bool fetch_allow_loopback;
    int upstream_max_attempts;
    int upstream_budget_ms;
    int upstream_backoff_base_ms;
    int upstream_backoff_max_ms;
    int upstream_cooldown_ms;
    bool upstream_retry_maybe_executed;
    /* blob store (docs/operations.md, "Result storage") */
    char blob_backend[8];
    char s3_endpoint[512];
    char s3_region[64];
    char s3_bucket[64];
    char s3_prefix[256];
    bool s3_path_style;
    int s3_presign_ttl_s;
    char s3_access_key[256];
    char s3_secret_key[256]; /* never logged */
    int64_t s3_max_object_bytes;
    int s3_connect_timeout_ms;
    int s3_timeout_ms;
    int s3_proxy_threads;
};

/* Fill with defaults. */
void ig_config_defaults(struct ig_config *c);
/* Apply the file named by c->config_file (if any), then the environment. */
enum ig_err ig_config_load_file_env(struct ig_config *c, struct ig_errbuf *eb);
/* Set one option by name from text ("max-body-bytes", "1048576"). IG_E_NOT_FOUND when no
 * option has that name; IG_E_INVALID when the value is out of bounds or malformed. */
enum ig_err ig_config_set(struct ig_config *c, const char *name, const char *value,
                          struct ig_errbuf *eb);
/* True when the option takes no value on the command line (booleans). */
bool ig_config_is_flag(const char *name);
/* Print every option with its default and bounds (for --help). */
void ig_config_print_help(FILE *f);

#endif
