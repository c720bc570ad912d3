#include <criterion/criterion.h>
Test(script_sandbox, placeholder) { cr_assert(1); }
