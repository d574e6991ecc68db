#include "web.h"

const web_route_t routes_events[] = {
    {0},
};
