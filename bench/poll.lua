-- wrk script: reAPI poll of one finished task
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("IG_KEY")
