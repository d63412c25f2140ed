// The framework headers compile as C++ (built, not run).
#include <csgi/resource.h>
#include <csgi/route.h>

int
main()
{
    return CSGI_RES_VERSION_MAJOR - CSGI_ROUTE_VERSION_MAJOR;
}
