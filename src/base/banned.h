/* banned.h: unsafe libc calls turned into compile errors (git's banned.h). */
#ifndef IG_BANNED_H
#define IG_BANNED_H

/* The system headers first: glibc defines inline versions of some of these at -O1 and up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gmtime
#define gmtime(x) BANNED(gmtime)
#undef localtime
#define localtime(x) BANNED(localtime)
#undef atoi
#define atoi(x) BANNED(atoi)

#endif
