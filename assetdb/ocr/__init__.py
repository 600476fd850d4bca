"""Text inside images: rapidocr (PP-OCR ONNX models inside its wheel, no download), the
recognised lines stored beside the asset, and a resumable backfill (`assetdb ocr`)."""
