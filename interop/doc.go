// Package interop holds ferry's tests against NNG's own peer, nngcat
// (Debian's nng-utils, NNG 1.5.2). It has no code besides its tests.
//
// nngcat can receive any number of messages but sends one per process
// unless --interval is given, and its interval is a whole number of
// seconds. So bulk runs go ferry to nngcat in one process, and nngcat to
// ferry as many short processes, one message each.
package interop
