/*
 * server/main.c — main() of bitdistilld.
 */
#include "server/daemon.h"

int main(int argc, char **argv)
{
    return srv_daemon_main(argc, argv);
}
