/*
 * cmd/main.c — main() of bitdistilld.
 */
#include "cmd/daemon.h"

int main(int argc, char **argv)
{
    return cmd_daemon_main(argc, argv);
}
