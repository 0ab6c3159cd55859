"""Read views: the queries behind each screen of the dashboards, lists and exports (one module per
screen), over the read model and the figures the refresher derives from it."""
