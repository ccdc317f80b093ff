/*
 * etcd_server.h - run a one-member etcd as a child process on loopback.
 *
 * For tests (a real etcd per test binary, on free ports, in a temp dir)
 * and for `cairn dev`. Starts /usr/bin/etcd (or $CAIRN_ETCD), waits with a
 * deadline until it answers, and stops it by PID. Blocking; not for loop
 * threads.
 */
#ifndef CAIRN_META_ETCD_SERVER_H
#define CAIRN_META_ETCD_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct etcd_server etcd_server;

/* A free TCP port on 127.0.0.1 (bound and released: racy in theory, fine
 * on a test machine). 0 on failure. */
int etcd_server_free_port(void);

/* Start etcd with its data in `dir` (created if needed) on client port
 * `client_port` and peer port `peer_port` (0 = pick free ports), logging
 * to dir/etcd.log, and wait up to `timeout_ms` until it serves.
 * 0, CAIRN_ERR_IO (spawn failed) or CAIRN_ERR_TIMEOUT (killed again). */
int etcd_server_start(const char *dir, int client_port, int peer_port,
                      int timeout_ms, etcd_server **out);

/* Start an n-member etcd cluster (n = 1..5) on free ports, member i in
 * dir/m<i>, and wait up to timeout_ms until every member serves. Fills
 * out[0..n); each member is then stopped, killed or restarted on its own
 * with the functions below. */
int etcd_server_start_cluster(const char *dir, int n, int timeout_ms,
                              etcd_server **out);

/* The members' client URLs, comma-separated (etcd_open's format), into
 * out[0..len). Returns the length it needed. */
size_t etcd_server_urls(etcd_server *const *members, int n, char *out,
                        size_t len);

/* "http://127.0.0.1:<client port>" */
const char *etcd_server_url(const etcd_server *s);
pid_t etcd_server_pid(const etcd_server *s);

/* Kill the process (SIGKILL when `hard`, else SIGTERM, escalated to
 * SIGKILL after 5 s) and reap it; the data directory stays. */
void etcd_server_kill(etcd_server *s, int hard);

/* Start it again on the same ports and data (after etcd_server_kill). */
int etcd_server_restart(etcd_server *s, int timeout_ms);

/* Kill (if running), remove the data directory if `remove_dir`, free. */
void etcd_server_stop(etcd_server *s, int remove_dir);

#endif
