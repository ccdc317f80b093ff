/*
 * conf.h - `--config FILE`: a process's flags from a file, one per line.
 *
 * Every long-running command (`cairn node`, `router`, `controller`) takes
 * `--config FILE`. The file holds flags, one per line, in any of these
 * forms (the first word is the flag's name, the rest of the line its value,
 * so a value may contain spaces):
 *
 *     # comment
 *     id 3
 *     --listen 10.0.0.3:7000
 *     dir=/var/lib/cairn
 *
 * The flags are spliced into the argument list where `--config FILE`
 * stood, so a flag given after `--config` on the command line overrides
 * the file (every command takes the last value of a repeated flag). A
 * flag without a value is a line with just its name. A file cannot name
 * another --config.
 */
#ifndef CAIRN_CONF_H
#define CAIRN_CONF_H

#include <stddef.h>

/* An argument list after expansion. Owns its strings (conf_args_free);
 * argv[argc] is NULL. */
typedef struct conf_args {
    int argc;
    char **argv;
} conf_args;

/* Expand every `--config FILE` (or `--config=FILE`) of argv[0..argc) into
 * out. 0, or CAIRN_ERR_INVALID / CAIRN_ERR_IO / CAIRN_ERR_NOMEM with the
 * reason (file and line) in `err` (`errcap` bytes). */
int conf_expand(int argc, char **argv, conf_args *out, char *err,
                size_t errcap);

/* Parse the text of a config file into out (appending, as "--name" and
 * "value" pairs). `what` names the file in errors. Same returns. */
int conf_parse_text(const char *text, const char *what, conf_args *out,
                    char *err, size_t errcap);

void conf_args_free(conf_args *a);

#endif
