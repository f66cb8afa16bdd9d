/* The BPF target has no asm/ directory of its own: the generic definitions
 * are exactly right for it (64-bit longs, little or big endian alike). */
#include <asm-generic/bitsperlong.h>
