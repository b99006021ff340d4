"""What a poll asks the API and how it commits: the poller (all or nothing), the strategies that
decide a round's requests, and offset paging under churn. Speaks to the API only through
``monitor.dli``; publishes through ``monitor.output``."""
