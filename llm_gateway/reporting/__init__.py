"""Usage questions, answered from the daily rollups (``queries``), and the charts of the
admin's pages (``charts``)."""
