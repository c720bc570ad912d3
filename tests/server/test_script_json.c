#include <criterion/criterion.h>
Test(script_json, placeholder)
{
    cr_assert(1);
}
