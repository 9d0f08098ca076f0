/*
 * demo_cmd - relayguard demo (the command line).
 *
 * Owns: its options and usage text.
 * Must not: play anything itself; src/demo/ does.
 */
#ifndef RG_DEMO_CMD_H
#define RG_DEMO_CMD_H

/* demo_main - argv after "demo"; the exit status (0 every step as expected,
 * 1 not, 64 usage, 69 dnsmasq missing, 130 interrupted). */
int demo_main(int argc, char **argv);

#endif
