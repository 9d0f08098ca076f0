/*
 * params - the one table of configuration parameters (params.def).
 *
 * Owns: what each parameter is: its name, type, default, the struct config
 * field it is stored in, its limits, its one-line meaning, its Postfix
 * equivalent and an example. The loader (config.c), `relayguard config`,
 * config_free and the manual page relayguard.conf(5) (manual.c) are all
 * driven by this table, so a parameter cannot exist undocumented.
 * Must not: parse anything; it only describes.
 *
 * Adding a parameter is one PARAM(...) row in params.def (and the field in
 * struct config); see the comment at the top of params.def.
 */
#ifndef RG_CONFIG_PARAMS_H
#define RG_CONFIG_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How a value is read, stored (field type in brackets) and freed. */
enum param_type {
	PT_STRING,         /* char *; no line breaks */
	PT_HOSTNAME,       /* char *; a host or domain name */
	PT_PATH,           /* char *; a directory, never empty */
	PT_IPV4,           /* char *; empty or an IPv4 address */
	PT_IPV6,           /* char *; empty or an IPv6 address */
	PT_BOOL,           /* bool; yes/no (true/false) */
	PT_COUNT,          /* uint64_t or unsigned; a whole number in min..max */
	PT_SIZE,           /* uint64_t; bytes in min..max */
	PT_DURATION,       /* uint64_t; seconds, written 300s, 5m, 1h, 2d, in min..max */
	PT_CHOICE,         /* an enum (or bool); one word of .choices */
	PT_DOMAINS,        /* char ** NULL-terminated, lower case */
	PT_PARENT_DOMAINS, /* char **; ".example.com" also matches subdomains */
	PT_NETWORKS,       /* struct cidr * and size_t n_<field> */
	PT_MAPS,           /* struct map ** NULL-terminated */
	PT_ALIASES,        /* struct map ** NULL-terminated; aliases(5) files */
	PT_RESTRICTIONS,   /* struct restriction_list */
	PT_LISTEN,         /* appended to cfg->listen with .role */
	PT_SASL_OPTIONS,   /* bool: plaintext allowed (no "noplaintext") */
	PT_COUNT_TYPES
};

/* What Postfix calls it. */
enum param_postfix {
	PF_UNSET,   /* a row without SAME/LIKE/OWN: the unit test fails */
	PF_SAME,    /* Postfix's parameter of the same name and meaning */
	PF_LIKE,    /* Postfix's parameter of the same name; .pf_note says what differs */
	PF_OWN,     /* relayguard's own; .pf_note names Postfix's nearest thing, if any */
};

struct param_choice {
	const char *name;
	int value;
};

struct param_def {
	const char *name;
	enum param_type type;
	const char *def;     /* NULL: computed at load time (.def_doc says how) */
	const char *meaning; /* one line for relayguard.conf(5) */
	size_t off, size;    /* the field in struct config (size 0: none) */
	size_t count_off;    /* PT_NETWORKS: its size_t count */
	uint64_t min, max;   /* PT_COUNT, PT_SIZE, PT_DURATION */
	const struct param_choice *choices; /* PT_CHOICE; ends with a NULL name */
	int role;            /* PT_LISTEN: enum listen_role */
	enum param_postfix postfix;
	const char *pf_note;
	const char *def_doc; /* words for a computed or special default */
	const char *example; /* a value, for "name = example" */
	const char *group;   /* first row of a group: its heading in the manual */
	bool secret;         /* printed with the password of a URL as *** */
	bool reloads;        /* a reload gives new sessions the new value */
};

/* One enumerator per row, in table order: PARAM_myhostname, ... */
enum param_id {
#define PARAM(name, ...) PARAM_##name,
#include "config/params.def"
#undef PARAM
	PARAM_COUNT
};

extern const struct param_def config_params[PARAM_COUNT];

/* A type's name in the manual ("time", "list of networks"). */
const char *config_param_type_name(enum param_type t);

/* Is every row complete, and its field the size its type stores?
 * NULL, or what is wrong with which row (convert.c). */
const char *config_table_problem(void);

/* The k-th restriction word ("permit_mynetworks"), NULL past the last. */
const char *config_restriction_name(size_t k);

/* relayguard.conf(5) in mdoc, from the table (`relayguard config --man`). */
void config_print_manual(FILE *out);

#endif
