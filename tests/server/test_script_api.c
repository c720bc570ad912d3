#include <criterion/criterion.h>
Test(script_api, placeholder)
{
    cr_assert(1);
}
