#include "web.h"

const web_route_t routes_fleet[] = {
    {0},
};
