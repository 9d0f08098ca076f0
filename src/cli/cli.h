/*
 * cli - what the command line's subcommands share (main.c implements it).
 *
 * Owns: loading the configuration a subcommand was given, with the errors
 * printed the same way for every command.
 * Must not: exit; each command decides its own exit status (78 for this).
 */
#ifndef RG_CLI_H
#define RG_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

#define EXIT_USAGE 64
#define EXIT_CONFIG 78

/* file (NULL: the embedded default), or NULL after printing each error and
 * "FILE has errors" (with "; not starting" when serving). */
struct config *cli_load_config(const char *file, bool serving);

/* cli_asks_help - -h or --help among a command's arguments (anywhere: every
 * command and subcommand then prints its usage to stdout and exits 0). */
bool cli_asks_help(int argc, char **argv);

/* cli_closest - the one of NAMES nearest to WORD, for a "did you mean" hint
 * (the configuration loader's distance and limit), or NULL if none is near. */
const char *cli_closest(const char *word, const char *const *names, size_t n);

#endif
