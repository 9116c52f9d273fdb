-- wrk script: reAPI submits (text-to-image, offline provider)
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("IG_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gemini-2.5-flash-image-preview","prompt":"moonlight on a bamboo path, ink wash painting","size":"16:9"}'
