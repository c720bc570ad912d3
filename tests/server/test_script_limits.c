#include <criterion/criterion.h>
Test(script_limits, placeholder) { cr_assert(1); }
